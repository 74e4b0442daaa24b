"""Where the images are: (path, label) lists from class folders or list files, and class names."""
import os

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


from common.errors import DatasetError  # noqa: F401  (importable from here, as before)


def class_folders(root):
    """Sorted class sub-folders of ``root`` (the ImageNet convention, label = index)."""
    if not os.path.isdir(root):
        raise DatasetError(f"dataset folder not found: {root}")
    classes = sorted(d.name for d in os.scandir(root) if d.is_dir())
    if not classes:
        raise DatasetError(f"no class folders in {root} (expected {root}/<class>/<image>)")
    return classes


def samples_from_folder(root, classes=None):
    """``[(path, label)]`` for ``root/<class>/*``; ``classes`` fixes the label order (e.g. train's)."""
    classes = classes or class_folders(root)
    samples = []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            continue
        for dirpath, _, files in sorted(os.walk(folder)):
            samples += [(os.path.join(dirpath, f), label) for f in sorted(files) if f.lower().endswith(IMG_EXTENSIONS)]
    if not samples:
        raise DatasetError(f"no images found under {root}")
    return samples


def samples_from_list(list_path, root):
    """``[(root/rel_path, label)]`` from lines ``rel_path label``."""
    if not os.path.isfile(list_path):
        raise DatasetError(f"list file not found: {list_path}")
    samples = []
    with open(list_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.strip().rsplit(maxsplit=1)
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise DatasetError(f"{list_path}:{lineno}: expected 'relative/path label', got {line.strip()!r}")
            samples.append((os.path.join(root, parts[0]), int(parts[1])))
    if not samples:
        raise DatasetError(f"list file is empty: {list_path}")
    return samples


def resolve_list_path(list_path, data_path):
    return list_path if os.path.isabs(list_path) or os.path.isfile(list_path) else os.path.join(data_path, list_path)


def dataset_samples(cfg, split):
    """The (path, label) samples of ``split`` ('train' | 'val') as the config describes them."""
    list_key = "cls_label_path_train" if split == "train" else "cls_label_path_val"
    if not cfg.data_path and not cfg[list_key]:
        raise DatasetError("no dataset given: set --data_path (train/ and val/ class folders) or list files")
    if cfg[list_key]:
        return samples_from_list(resolve_list_path(cfg[list_key], cfg.data_path), cfg.data_path)
    folder = os.path.join(cfg.data_path, cfg.train_dir if split == "train" else cfg.val_dir)
    train_folder = os.path.join(cfg.data_path, cfg.train_dir)
    classes = class_folders(train_folder) if os.path.isdir(train_folder) else None
    return samples_from_folder(folder, classes)


def class_names(cfg):
    """Label names: ``label_file`` lines, else the training class folders, else None."""
    if cfg.label_file:
        with open(cfg.label_file, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    folder = os.path.join(cfg.data_path, cfg.train_dir) if cfg.data_path else ""
    if folder and os.path.isdir(folder):
        return class_folders(folder)
    return None
