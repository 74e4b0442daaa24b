"""What predict reads: the image files of ``--predict_path`` and the batches of the eval pipeline over them.

``--predict_path`` is one image, a folder (walked recursively in a stable sorted order), a list file
(one image path a line, optionally followed by a label; relative paths are taken from ``data_path``
like the dataset lists, else from the list's folder; a list not found as given is looked for in
``data_path`` too) or several of these separated by commas. A path
that exists as a whole wins over splitting it (``cat, sitting.png``). Files that are not regular files
(a FIFO, a socket, a device) are never opened blocking: the reader skips them with a warning naming
them and the results get a warning row, as for any unreadable image.
Only the file names are held: the images go through ``create_dataset`` in batches (decode and eval
transforms in the C++ workers), so memory follows the batch, not the folder.
"""
import os
import stat

from common.data.samples import IMG_EXTENSIONS, read_text_lines
from common.errors import DatasetError

LIST_SUFFIXES = (".txt", ".lst", ".list")
# Files people pass to predict by mistake: the model, given where the images go
PREFETCH = 2  # rows/batches each pipeline stage may hold ahead (MindSpore's default 16: 16 batches waiting)
MODEL_SUFFIXES = (".ckpt", ".mindir", ".onnx", ".air", ".pdparams", ".pth", ".pt", ".safetensors", ".npz")


def _special(path):
    """True for an existing path that is not a regular file or folder (stat does not block on a FIFO)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode) and not os.path.isdir(path)
    except OSError:
        return False


def folder_images(folder):
    """Image files under ``folder``, recursively, sorted by folder then name."""
    found = []
    for dirpath, dirnames, files in os.walk(folder):
        dirnames.sort()  # os.walk visits sub-folders in this (sorted) order
        found += [os.path.join(dirpath, name) for name in sorted(files) if name.lower().endswith(IMG_EXTENSIONS)]
    return found


def list_images(list_path, data_path=""):
    """Image paths of a list file (``path [label]`` lines); relative ones from ``data_path`` or the list's folder."""
    root = data_path if data_path and os.path.isdir(data_path) else os.path.dirname(os.path.abspath(list_path))
    paths = []
    for line in read_text_lines(list_path):
        entry = line.strip()
        if not entry:
            continue
        parts = entry.rsplit(maxsplit=1)  # a trailing integer is a label; a name may hold spaces
        rel = parts[0] if len(parts) == 2 and parts[1].lstrip("-").isdigit() else entry
        paths.append(rel if os.path.isabs(rel) else os.path.join(root, rel))
    return paths


def _describe(path):
    """One line saying what a file predict cannot use is."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix in MODEL_SUFFIXES:
        return f"{path} is a model file ({suffix}), not an image: pass it as --ckpt_file and the images as --predict_path"
    return (f"{path} is not an image or a list of images ({suffix or 'no suffix'}): predict reads "
            f"{', '.join(IMG_EXTENSIONS)} files, folders of them and list files ({', '.join(LIST_SUFFIXES)})")


def _item_paths(item, data_path):
    if os.path.isdir(item):
        return folder_images(item)
    if _special(item):
        return [item]  # the reader skips it with a warning naming what it is (a FIFO...), without opening it blocking
    lower = item.lower()
    if lower.endswith(IMG_EXTENSIONS):
        return [item]
    if lower.endswith(LIST_SUFFIXES):
        return list_images(item, data_path)
    raise DatasetError(_describe(item))


def _found(item, data_path):
    """``item`` if it exists, else a list file under ``data_path`` (as the dataset lists are found), else ''."""
    if os.path.lexists(item):
        return item
    under = os.path.join(data_path, item) if data_path and not os.path.isabs(item) else ""
    return under if under.lower().endswith(LIST_SUFFIXES) and os.path.isfile(under) else ""


def image_paths(spec, data_path=""):
    """The image files ``spec`` names (see the module docstring), in order; DatasetError if none."""
    if not spec:
        raise DatasetError("nothing to predict: pass --predict_path IMAGE[,IMAGE...], a folder or a list file")
    items = [spec] if _found(spec, data_path) else [s for s in spec.split(",") if s]
    paths = []
    for item in items:
        found = _found(item, data_path)
        if not found:
            raise DatasetError(f"no such image, folder or list file: {item}")
        paths += _item_paths(found, data_path)
    if not paths:
        raise DatasetError(f"no images found in {spec!r}")
    return paths


def predict_batches(cfg, paths, batch_size):
    """(NCHW float32 batch, positions in ``paths``) through the eval pipeline, in order. An unreadable
    file is left out of its batch (reported once by the reader): its position is missing."""
    import mindspore.dataset as ds
    from common.data import create_dataset
    ds.config.set_prefetch_size(PREFETCH)
    dataset = create_dataset(cfg, "val", batch_size=batch_size, shuffle=False,
                             samples=[(path, i) for i, path in enumerate(paths)])
    yield from dataset.create_tuple_iterator(output_numpy=True)
