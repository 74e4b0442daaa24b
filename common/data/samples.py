"""Where the images are: (path, label) lists from class folders or list files, and class names.

Labels must be classes of the net: a list-file label outside ``[0, num_classes)`` or more training
class folders than ``num_classes`` stop the run; validation folders that do not match the training
classes, and training classes without images, are warned about (once per run)."""
import logging
import os

from common.data.image_file import read_regular
from common.errors import DatasetError

_logger = logging.getLogger(__name__)
_WARNED = set()
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
UNLABELED = -1  # the label of a distill_unlabeled image: the loss masks its CE term (common/distill.py)


def class_folders(root):
    """Sorted class sub-folders of ``root`` (the ImageNet convention, label = index)."""
    if not os.path.isdir(root):
        raise DatasetError(f"dataset folder not found: {root}")
    classes = sorted(d.name for d in os.scandir(root) if d.is_dir())
    if not classes:
        raise DatasetError(f"no class folders in {root} (expected {root}/<class>/<image>)")
    return classes


def _warn_once(message):
    if message not in _WARNED:
        _WARNED.add(message)
        _logger.warning(message)


def _names(names, limit=5):
    return ", ".join(names[:limit]) + (f" … (+{len(names) - limit})" if len(names) > limit else "")


def samples_from_folder(root, classes=None):
    """``[(path, label)]`` for ``root/<class>/*``; ``classes`` fixes the label order (e.g. train's)."""
    own = class_folders(root)
    if classes:
        _check_against_training_classes(root, own, classes)
    classes = classes or own
    samples, empty = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            continue
        found = [(os.path.join(dirpath, f), label) for dirpath, _, files in sorted(os.walk(folder))
                 for f in sorted(files) if f.lower().endswith(IMG_EXTENSIONS)]
        if not found:
            empty.append(name)
        samples += found
    if not samples:
        raise DatasetError(f"no images found under {root}")
    if empty:
        _warn_once(f"{root}: class folder(s) without images: {_names(empty)}")
    return samples


def _check_against_training_classes(root, own, classes):
    """A validation folder's classes against the training classes (which fix the labels)."""
    unknown = [c for c in own if c not in classes]
    missing = [c for c in classes if c not in own]
    if unknown and len(unknown) == len(own):
        raise DatasetError(f"none of the class folders of {root} is a training class "
                           f"({root}: {_names(own, 3)}; training: {_names(classes, 3)})")
    if unknown:
        _warn_once(f"{root}: class folder(s) that are not training classes are ignored: {_names(unknown)}")
    if missing:
        _warn_once(f"{root}: no folder for training class(es) {_names(missing)}: they are not evaluated")


def check_class_count(classes, num_classes, root):
    """More class folders than the net has outputs: labels past the head would train silently wrong."""
    if len(classes) > num_classes:
        raise DatasetError(f"{root} has {len(classes)} class folders but num_classes is {num_classes}; "
                           f"set --num_classes {len(classes)}")


# What Windows tools put in front of a text file: Notepad's UTF-8 "with BOM", PowerShell 5's UTF-16
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def read_text_lines(path, what="list file"):
    """The lines of a text file (list file, label file) as any tool writes it: UTF-8 with or without a
    BOM, UTF-16 with its BOM, LF, CRLF or CR line ends. ``DatasetError`` (one line) for a missing file,
    one that is not a regular file (a FIFO would block the run) or not text."""
    if not os.path.exists(path):
        raise DatasetError(f"{what} not found: {path}")
    try:
        data, _ = read_regular(path)
    except (OSError, ValueError) as err:
        raise DatasetError(f"{what} {path} cannot be read: {err}") from None
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), "utf-8")
    try:
        return data.decode(encoding).splitlines()
    except UnicodeDecodeError:
        raise DatasetError(f"{path} is not a text {what} (expected UTF-8 or UTF-16 with a BOM)") from None


def _list_entry(root, rel_path):
    """``root/rel_path``; a Windows path (``cat\\1.jpg``) that does not exist as written is read with ``/``."""
    path = os.path.join(root, rel_path)
    if os.sep == "/" and "\\" in rel_path and not os.path.exists(path):
        path = os.path.join(root, rel_path.replace("\\", "/"))
    return path


def samples_from_list(list_path, root, num_classes=None):
    """``[(root/rel_path, label)]`` from lines ``rel_path label``; with ``num_classes`` every label
    must be in ``[0, num_classes)``."""
    samples = []
    for lineno, line in enumerate(read_text_lines(list_path), 1):
        parts = line.strip().rsplit(maxsplit=1)
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DatasetError(f"{list_path}:{lineno}: expected 'relative/path label', got {line.strip()!r}")
        label = int(parts[1])
        if num_classes is not None and not 0 <= label < num_classes:
            raise DatasetError(f"{list_path}:{lineno}: label {label} is outside [0, {num_classes}) "
                               f"(num_classes {num_classes}); fix the list or set --num_classes")
        samples.append((_list_entry(root, parts[0]), label))
    if not samples:
        raise DatasetError(f"list file is empty: {list_path}")
    return samples


def resolve_list_path(list_path, data_path):
    return list_path if os.path.isabs(list_path) or os.path.exists(list_path) else os.path.join(data_path, list_path)


def dataset_samples(cfg, split):
    """The (path, label) samples of ``split`` ('train' | 'val') as the config describes them."""
    list_key = "cls_label_path_train" if split == "train" else "cls_label_path_val"
    if not cfg.data_path and not cfg[list_key]:
        raise DatasetError("no dataset given: set --data_path (train/ and val/ class folders) or list files")
    # retrieval query/gallery lists hold identity labels, not classes of the net
    num_classes = cfg.num_classes if cfg.get("labels_are_classes", True) else None
    extra = unlabeled_samples(cfg.distill_unlabeled, cfg.data_path) if split == "train" and cfg.get(
        "distill_unlabeled") else []
    if cfg[list_key]:
        return samples_from_list(resolve_list_path(cfg[list_key], cfg.data_path), cfg.data_path, num_classes) + extra
    folder = os.path.join(cfg.data_path, cfg.train_dir if split == "train" else cfg.val_dir)
    train_folder = os.path.join(cfg.data_path, cfg.train_dir)
    classes = class_folders(train_folder) if os.path.isdir(train_folder) else None
    if classes and num_classes is not None:
        check_class_count(classes, num_classes, train_folder)
    return samples_from_folder(folder, classes) + extra


def unlabeled_samples(spec, data_path):
    """``[(path, UNLABELED)]``: every image under the folder ``spec``, or the paths listed in the file
    ``spec`` (one per line, under ``data_path``; a trailing integer label is ignored)."""
    path = resolve_list_path(spec, data_path)
    if os.path.isdir(path):
        found = [os.path.join(d, f) for d, _, files in sorted(os.walk(path)) for f in sorted(files)
                 if f.lower().endswith(IMG_EXTENSIONS)]
    else:
        found = []
        for line in read_text_lines(path, "distill_unlabeled list"):
            parts = line.strip().rsplit(maxsplit=1)
            rel = parts[0] if len(parts) == 2 and parts[1].lstrip("-").isdigit() else line.strip()
            if rel:
                found.append(_list_entry(data_path, rel))
    if not found:
        raise DatasetError(f"distill_unlabeled {spec} holds no images")
    return [(p, UNLABELED) for p in found]


def class_names(cfg):
    """Label names: ``label_file`` lines, else the training class folders, else None."""
    if cfg.label_file:
        return [line.strip() for line in read_text_lines(cfg.label_file, "label file") if line.strip()]
    folder = os.path.join(cfg.data_path, cfg.train_dir) if cfg.data_path else ""
    if folder and os.path.isdir(folder):
        return class_folders(folder)
    return None
