"""Read foreign or native weight files into ``{name: numpy array}`` without torch or paddle
(step 1 of ``common.checkpoint.load_weights``: the file's tensors under the file's own names).

Formats are told apart by content, not by suffix (a renamed file still loads):
safetensors (8-byte header length + JSON), torch zip (``PK``), pickle (``.pdparams``),
MindSpore ``.ckpt`` (protobuf, by suffix and as the fallback).
"""
import dataclasses
import os
import pickle
import struct


_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"[:16]
_TORCH_SUFFIXES = (".pth", ".pt", ".tar")


def sniff_format(path):
    """'safetensors' | 'torch' | 'paddle' | 'mindspore' for the file at ``path``."""
    if not os.path.isfile(path):
        from common.errors import WeightsError
        raise WeightsError(f"weights file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:4] == b"PK\x03\x04":
        return "torch"
    # safetensors before pickle: its little-endian header length can start with byte 0x80 too
    # (one file in 256), which a pickle's protocol opcode also does
    if len(head) >= 9 and head[8:9] == b"{":
        (header_len,) = struct.unpack("<Q", head[:8])
        if 0 < header_len < os.path.getsize(path) or head[:1] != b"\x80":
            return "safetensors"  # a header longer than the file: truncated, the reader says so
    if head[:1] == b"\x80":
        # a pickle: .pdparams is a pickled dict; legacy (pre-zip) torch files start with torch's
        # magic number, and the torch reader explains that format
        from common.weights.paddle_reader import looks_like_pdparams
        legacy_torch = head.startswith(_TORCH_LEGACY_MAGIC) or path.endswith(_TORCH_SUFFIXES)
        return "paddle" if looks_like_pdparams(path) and not legacy_torch else "torch"
    return "mindspore"


@dataclasses.dataclass(frozen=True)
class WeightsFile:
    """What ``read_weights`` found: the file, its format and its tensors under its own names."""
    path: str      # the file read: a Paddle path given without its suffix has it
    fmt: str       # 'safetensors' | 'torch' | 'paddle' | 'mindspore'
    tensors: dict  # the file's name -> numpy array (a .ckpt: every entry, training state included)


def read_weights(path):
    """The ``WeightsFile`` at ``path``. A Paddle path given without its suffix
    (``pretrained_model: ./DLA34_pretrained``, PaddleClas's habit) finds the ``.pdparams`` file.

    Readers' refusals (unsafe pickles, unreadable files) come back as ``WeightsError``."""
    from common.errors import WeightsError
    if not os.path.exists(path) and os.path.isfile(path + ".pdparams"):
        path += ".pdparams"
    fmt = sniff_format(path)
    try:
        return WeightsFile(path, fmt, _read(path, fmt))
    except WeightsError:
        raise
    except (pickle.UnpicklingError, ValueError) as err:
        raise WeightsError(str(err)) from err


def _read(path, fmt):
    if fmt == "safetensors":
        from safetensors.numpy import load_file
        try:
            state = load_file(path)
        except Exception as err:  # pylint: disable=broad-except  # SafetensorError is no ValueError
            raise ValueError(f"{path} ({os.path.getsize(path)} bytes) is not a readable safetensors file "
                             f"(truncated?): {err}") from None
    elif fmt == "torch":
        from common.weights.torch_reader import read_torch_checkpoint
        state = read_torch_checkpoint(path)
    elif fmt == "paddle":
        from common.weights.paddle_reader import read_pdparams
        state = read_pdparams(path)
    else:
        state = _read_mindspore(path)
    return state


def _read_mindspore(path):
    return {k: v.asnumpy() for k, v in load_checkpoint_file(path).items()}


def load_checkpoint_file(path, **kwargs):
    """``ms.load_checkpoint`` with a one-line ``WeightsError`` for a missing, empty, truncated or
    foreign file (MindSpore's own text is a paragraph about protobuf)."""
    import mindspore as ms  # here, not at the top: reading a .pth or .pdparams needs no MindSpore
    from common.errors import WeightsError
    if not os.path.isfile(path):
        raise WeightsError(f"checkpoint not found: {path}")
    size = os.path.getsize(path)
    if size == 0:
        raise WeightsError(f"{path} is empty (0 bytes): a save that did not finish? Use an earlier checkpoint")
    try:
        return ms.load_checkpoint(path, **kwargs)
    except Exception as err:  # pylint: disable=broad-except  # ValueError/RuntimeError/DecodeError
        raise WeightsError(f"{path} ({size} bytes) is not a readable checkpoint (.ckpt, .safetensors, .pth, "
                           f".pdparams): truncated, or another format") from None
