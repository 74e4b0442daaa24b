"""Read PaddlePaddle ``.pdparams`` files without PaddlePaddle and without running their pickle.

``paddle.save(layer.state_dict(), path)`` writes a pickle of a plain dict: parameter name ->
numpy array, plus a ``StructuredToParameterName@@`` table (structured name -> Paddle's internal
parameter name) that carries no weights. The only globals such a pickle needs are those that
rebuild numpy arrays:

* current form (numpy >= 2, protocol 4): ``numpy._core.multiarray._reconstruct``,
  ``numpy.ndarray``, ``numpy.dtype``;
* older form (numpy 1.x, protocol 2): ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``,
  ``numpy.dtype`` and ``_codecs.encode`` (how protocol 2 stores ``bytes``).

Any other global, or a persistent id, is refused before it is looked up, so nothing a hostile
file names is ever imported or called. The allowed ones are narrowed further: they are
replaced by wrappers that accept only the arguments a numpy array pickle uses.
"""
import os
import pickle

import numpy as np

# Entries paddle.save adds next to the weights; they are bookkeeping, not parameters.
SKIPPED_KEYS = ("StructuredToParameterName@@",)
# paddle.save with protocol 2/3 splits arrays over 4 GB into parts listed under this key.
_UNPACK_INFO_KEY = "UnpackBigParamInfor@@"
_NUMERIC_KINDS = "biufc"  # bool, int, uint, float, complex: no object arrays
# numpy's own array-rebuilding function, found without naming numpy.core / numpy._core.
_np_reconstruct = np.empty(0).__reduce__()[0]


class PdparamsError(ValueError):
    """The file is not a readable ``.pdparams`` (a pickled dict of numpy arrays)."""


class UnsafePdparamsError(PdparamsError):
    """The pickle asks for something other than numpy arrays; it was not executed."""


def _refuse(what, source):
    raise UnsafePdparamsError(
        f"refusing {what} in {source}: a .pdparams may only contain numpy arrays, built with "
        f"{', '.join(sorted('.'.join(k) for k in _ALLOWED_GLOBALS))}; nothing from this file was run")


def _safe_reconstruct(subtype, shape, dtype):
    """``numpy.core.multiarray._reconstruct`` limited to an empty plain ndarray."""
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"_reconstruct called with {subtype!r}, expected numpy.ndarray")
    if not (isinstance(shape, tuple) and all(isinstance(d, int) for d in shape)):
        raise pickle.UnpicklingError(f"_reconstruct called with shape {shape!r}")
    if not isinstance(dtype, (bytes, str)):
        raise pickle.UnpicklingError(f"_reconstruct called with dtype {dtype!r}")
    return _np_reconstruct(np.ndarray, shape, dtype)


def _safe_dtype(spec, align=False, copy=False):
    """``numpy.dtype`` limited to a type string such as ``'f4'``."""
    if not isinstance(spec, str):
        raise pickle.UnpicklingError(f"numpy.dtype called with {spec!r}, expected a type string")
    return np.dtype(spec, align=bool(align), copy=bool(copy))


def _latin1_encode(text, encoding="latin1"):
    """``_codecs.encode`` limited to what protocol 2 uses it for: str -> bytes via latin-1."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode called with encoding {encoding!r}")
    return text.encode("latin1")


_ALLOWED_GLOBALS = {
    ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,  # numpy >= 2
    ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,   # numpy 1.x
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _safe_dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _PdparamsUnpickler(pickle.Unpickler):
    """Unpickler whose only reachable globals are the entries of ``_ALLOWED_GLOBALS``."""

    def __init__(self, file, source):
        # latin1: numpy arrays pickled by Python 2 (old Paddle) store their bytes as str.
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            return _refuse(f"'{module}.{name}'", self._source)

    def persistent_load(self, pid):
        return _refuse(f"persistent id {pid!r}", self._source)


def _join_split_arrays(state, source):
    """Undo paddle.save's splitting of arrays too large for pickle protocol 2/3."""
    info = state.pop(_UNPACK_INFO_KEY, None)
    if info is None:
        return state
    try:
        for key, entry in info.items():
            parts = [state.pop(part) for part in entry["slices"]]
            state[key] = np.concatenate(parts).reshape(entry["OriginShape"])
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise PdparamsError(f"{source}: malformed {_UNPACK_INFO_KEY} entry ({err!r})") from err
    return state


def read_pdparams(path):
    """Load a PaddlePaddle ``.pdparams`` state dict as ``{name: numpy array}``.

    Raises ``UnsafePdparamsError`` (without executing anything) when the pickle names a global
    outside the numpy-array set, and ``PdparamsError`` when the file is not a pickled dict of
    numeric numpy arrays.
    """
    path = os.fspath(path)
    source = os.path.basename(path)
    with open(path, "rb") as f:
        try:
            obj = _PdparamsUnpickler(f, source).load()
        except UnsafePdparamsError:
            raise
        except Exception as err:  # any decoding failure of a non-pickle / corrupt file
            raise PdparamsError(
                f"{source} is not a readable .pdparams file (a pickled dict of numpy arrays): "
                f"{type(err).__name__}: {err}") from err
    if not isinstance(obj, dict):
        raise PdparamsError(f"{source} holds a pickled {type(obj).__name__}, expected a dict of "
                            "numpy arrays as paddle.save writes for a state_dict")
    state = {k: v for k, v in obj.items() if k not in SKIPPED_KEYS}
    state = _join_split_arrays(state, source)
    bad = [str(k) for k, v in state.items()
           if not isinstance(k, str) or not isinstance(v, np.ndarray) or v.dtype.kind not in _NUMERIC_KINDS]
    if bad:
        raise PdparamsError(f"{source}: entries that are not numeric numpy arrays: {', '.join(bad[:10])}"
                            + (f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""))
    return state


def looks_like_pdparams(path):
    """Cheap content sniff: a pickle (protocol 2-5) whose top-level object is a dict.

    This tells a ``.pdparams`` apart from a torch zip (``PK``), a legacy torch pickle (starts
    with a magic number, not a dict), safetensors and MindSpore ``.ckpt`` (protobuf).
    """
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) < 3 or head[0] != 0x80 or head[1] not in (2, 3, 4, 5):
        return False
    pos = 11 if head[2:3] == b"\x95" else 2  # skip a protocol-4 FRAME opcode and its 8-byte size
    return head[pos:pos + 1] == b"}"  # EMPTY_DICT
