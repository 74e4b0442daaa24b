"""Read PyTorch checkpoints (``torch.save`` zip format) without torch, and without running code.

A ``.pth`` / ``.pth.tar`` / ``.pt`` file written by ``torch.save`` (PyTorch >= 1.6) is a zip
archive ``<prefix>/data.pkl`` + ``<prefix>/data/<key>``: the pickle describes the object and
refers to tensor storages by key (pickle "persistent ids"); each storage is raw little-endian
bytes. Unpickling an arbitrary pickle can run any callable it names, so the unpickler here
resolves only the handful of globals a checkpoint of tensors needs (the tensor/parameter
rebuild functions, ``collections.OrderedDict`` and the ``torch.*Storage`` dtype markers),
each mapped to a local numpy implementation; any other global is refused before it is called.

What comes back is ``{name: np.ndarray}``: the ``state_dict`` entry when the top level is a
training checkpoint (``{'epoch', 'arch', 'state_dict', ...}``, as the official PeleeNet and many
ImageNet scripts save), otherwise the top-level dict itself, which must then hold only tensors
(``torch.save(model.state_dict(), path)``, the way timm publishes ``.pth`` weights). A leading
``module.`` (DataParallel / DistributedDataParallel) is stripped from every key. Other wrappers
(``model``, ``state_dict_ema``, ...) are not unwrapped. The legacy pre-1.6 (non-zip) format and
TorchScript archives are refused with an explanation.
"""
import collections
import io
import pickle
import zipfile

import numpy as np

__all__ = ["read_torch_checkpoint", "UnsafeCheckpointError"]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint's pickle names a global that is not needed for tensors and plain values."""


class _StorageType:
    """Stands in for ``torch.FloatStorage`` etc.: only records the element dtype."""

    def __init__(self, name, dtype):
        self.name, self.dtype = name, np.dtype(dtype)

    def __repr__(self):
        return f"torch.{self.name}"


# bfloat16 has no numpy dtype: read as uint16 and widened to float32 (exact) on load.
_STORAGE_TYPES = {name: _StorageType(name, dtype) for name, dtype in (
    ("FloatStorage", "<f4"), ("DoubleStorage", "<f8"), ("HalfStorage", "<f2"),
    ("BFloat16Storage", "<u2"), ("LongStorage", "<i8"), ("IntStorage", "<i4"),
    ("ShortStorage", "<i2"), ("CharStorage", "i1"), ("ByteStorage", "u1"),
    ("BoolStorage", "?"), ("UntypedStorage", "u1"))}


def _rebuild_tensor(storage, storage_offset, size, stride, *_):
    """numpy version of ``torch._utils._rebuild_tensor(_v2)``: a strided view, copied."""
    size, stride, offset = tuple(int(s) for s in size), tuple(int(s) for s in stride), int(storage_offset)
    if not isinstance(storage, np.ndarray) or storage.ndim != 1 or len(size) != len(stride):
        raise pickle.UnpicklingError("malformed tensor record in checkpoint")
    if 0 in size:
        return np.empty(size, dtype=storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if offset < 0 or min(stride, default=0) < 0 or last >= storage.size:
        raise pickle.UnpicklingError(f"tensor of size {size}, stride {stride}, offset {offset} "
                                     f"exceeds its storage of {storage.size} elements")
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size,
                                           strides=tuple(s * storage.itemsize for s in stride))
    return np.array(view)  # contiguous copy, detached from the storage buffer


def _rebuild_parameter(data, *_):
    """``torch._utils._rebuild_parameter(_with_state)``: a Parameter is just its data here."""
    return data


_ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{("torch", name): storage for name, storage in _STORAGE_TYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only ``_ALLOWED_GLOBALS`` and loads storages from the archive."""

    def __init__(self, data, archive, prefix, path, byteorder):
        super().__init__(io.BytesIO(data))
        self._archive, self._prefix, self._path, self._byteorder = archive, prefix, path, byteorder
        self._storages = {}

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"refusing to load '{module}.{name}' from {self._path}: only tensors, dicts, lists "
                "and plain values are allowed (save just the weights: "
                "torch.save(model.state_dict(), path))") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r} in {self._path}")
        _, storage_type, key, _location, numel = pid
        if key not in self._storages:
            self._storages[key] = self._read_storage(str(key), storage_type, int(numel))
        return self._storages[key]

    def _read_storage(self, key, storage_type, numel):
        name = f"{self._prefix}/data/{key}"
        try:
            raw = self._archive.read(name)
        except KeyError:
            raise pickle.UnpicklingError(f"{self._path}: storage '{name}' missing from the archive") from None
        dtype = storage_type.dtype.newbyteorder("<" if self._byteorder == "little" else ">")
        if len(raw) < numel * dtype.itemsize:
            raise pickle.UnpicklingError(f"{self._path}: storage '{name}' is truncated")
        array = np.frombuffer(raw, dtype=dtype, count=numel).astype(dtype.newbyteorder("="))
        if storage_type.name == "BFloat16Storage":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array


def _archive_prefix(archive, path):
    """The folder holding ``data.pkl`` (``archive`` or the file's stem, depending on torch)."""
    names = archive.namelist()
    prefixes = [n[:-len("/data.pkl")] for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if not prefixes:
        raise ValueError(f"{path} is a zip file but not a torch.save checkpoint (no <folder>/data.pkl)")
    prefix = prefixes[0]
    if any(n.startswith(f"{prefix}/code/") for n in names):
        raise ValueError(f"{path} is a TorchScript archive (torch.jit.save), not a torch.save "
                         "checkpoint; save the state_dict with torch.save instead")
    return prefix


def load_torch_pickle(path):
    """Unpickle the whole object saved in a ``torch.save`` zip file (tensors as numpy arrays)."""
    path = str(path)
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as handle:
            head = handle.read(2)
        hint = (" It looks like the legacy (PyTorch < 1.6) format, which is not supported: re-save "
                "it with a recent torch (torch.save(torch.load(f), f)).") if head[:1] == b"\x80" else ""
        raise ValueError(f"{path} is not a PyTorch zip checkpoint (.pth/.pth.tar/.pt written by "
                         f"torch.save).{hint}")
    with zipfile.ZipFile(path) as archive:
        prefix = _archive_prefix(archive, path)
        names = set(archive.namelist())
        byteorder = "little"
        if f"{prefix}/byteorder" in names:
            byteorder = archive.read(f"{prefix}/byteorder").decode("ascii").strip()
            if byteorder not in ("little", "big"):
                raise ValueError(f"{path}: unknown byteorder '{byteorder}'")
        data = archive.read(f"{prefix}/data.pkl")
        return _RestrictedUnpickler(data, archive, prefix, path, byteorder).load()


def read_torch_checkpoint(path):
    """``{name: np.ndarray}`` from a torch checkpoint: ``state_dict`` unwrapped, ``module.`` stripped."""
    obj = load_torch_pickle(path)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a dict of tensors")
    not_tensors = [str(k) for k, v in obj.items() if not isinstance(v, np.ndarray)]
    if not_tensors:
        raise ValueError(f"{path}: expected a state_dict (or a checkpoint with a 'state_dict' entry); "
                         f"these entries are not tensors: {', '.join(not_tensors[:10])}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}
