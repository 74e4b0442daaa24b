"""Embeddings on disk: ``OUT.npy`` (float32, one row per image) and ``OUT.txt`` (the images' names, one a
line, same order), streamed batch by batch so that a gallery larger than memory can be embedded, and
read back memory-mapped (``np.load(..., mmap_mode='r')``) by the retrieval eval.

The rows go to the file with plain writes (dirty pages are the kernel's to flush, not the process's
memory); the .npy header is written first for every image and rewritten at the end when unreadable
images were left out (same header length: the row count only shrinks). Both files are written under
``.tmp`` names and renamed at the end, so a failed run leaves no half-written pair."""
import os
import struct

import numpy as np

from common.errors import DatasetError, OutputError, describe_os_error

_NPY_MAGIC = b"\x93NUMPY\x01\x00"


def names_path(npy_path):
    return npy_path[:-len(".npy")] + ".txt"


def _npy_header(rows, dim, length=None):
    """A version 1.0 .npy header for a C-order float32 (rows, dim) array; ``length`` keeps an earlier one's size."""
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, dim)
    if length is None:  # magic + 2-byte length + text + "\n", padded to 64 bytes as numpy does
        length = -(-(len(_NPY_MAGIC) + 2 + len(text) + 1) // 64) * 64 - len(_NPY_MAGIC) - 2
    return _NPY_MAGIC + struct.pack("<H", length) + (text.ljust(length - 1) + "\n").encode("latin-1")


class EmbeddingWriter:
    """Appends each batch's embeddings and names; ``close()`` fixes the row count and renames the pair."""

    def __init__(self, path, capacity):
        self.path, self.capacity, self.rows, self.dim = path, int(capacity), 0, None
        self.file = self.names = None
        self.header_length = None

    def _open(self, dim):
        self.dim = dim
        header = _npy_header(self.capacity, dim)
        self.header_length = len(header) - len(_NPY_MAGIC) - 2
        self.file = open(self.path + ".tmp", "wb")
        self.file.write(header)
        self.names = open(names_path(self.path) + ".tmp", "w", encoding="utf-8")

    def add(self, embeddings, names):
        embeddings = np.ascontiguousarray(embeddings, np.float32)
        try:
            if self.file is None:
                self._open(embeddings.shape[1])
            self.file.write(embeddings.tobytes())
            self.names.write("".join(f"{name}\n" for name in names))
        except OSError as err:
            raise OutputError(f"cannot write {self.path}: {describe_os_error(err)}") from None
        self.rows += len(embeddings)

    def close(self):
        """(rows, dim) written; the files renamed into place."""
        if self.file is None:
            raise DatasetError(f"no embeddings to write to {self.path}: none of the images could be read")
        if self.rows != self.capacity:
            self.file.seek(0)
            self.file.write(_npy_header(self.rows, self.dim, self.header_length))
        self.file.close()
        self.names.close()
        os.replace(self.path + ".tmp", self.path)
        os.replace(names_path(self.path) + ".tmp", names_path(self.path))
        return self.rows, self.dim


def load_gallery(npy_path, gallery_samples):
    """(embeddings memory-mapped, labels) of a predict ``--embeddings`` file; each name's label from the
    gallery list's (path, label) samples."""
    if not os.path.isfile(npy_path) or not os.path.isfile(names_path(npy_path)):
        raise DatasetError(f"gallery embeddings not found: {npy_path} and {names_path(npy_path)} "
                           f"(write them with predict.py --embeddings)")
    try:
        embeddings = np.load(npy_path, mmap_mode="r")
    except ValueError as err:
        raise DatasetError(f"{npy_path} is not a .npy array: {err}") from None
    with open(names_path(npy_path), encoding="utf-8") as f:
        names = f.read().splitlines()
    if embeddings.ndim != 2 or len(names) != len(embeddings):
        raise DatasetError(f"{npy_path} holds {embeddings.shape} embeddings but {names_path(npy_path)} "
                           f"{len(names)} names")
    labels = {os.path.normpath(path): label for path, label in gallery_samples}
    missing = next((n for n in names if os.path.normpath(n) not in labels), None)
    if missing is not None:
        raise DatasetError(f"{missing} (in {names_path(npy_path)}) is not in the gallery list: embed the "
                           f"gallery list's images (predict.py --predict_path GALLERY_LIST)")
    return embeddings, np.array([labels[os.path.normpath(n)] for n in names])
