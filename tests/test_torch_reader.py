"""The torch-free PyTorch checkpoint reader: real checkpoints load, hostile pickles are refused.

Test archives are assembled by hand from pickle opcodes, so that what they contain (and which
callables they name) is explicit and no pickler resolves anything on our side."""
import json
import struct
import zipfile

import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path before anything else)
from common.weights.torch_reader import UnsafeCheckpointError, read_torch_checkpoint


# --- pickle protocol-2 opcodes ---------------------------------------------------------------
def _global(module, name):
    return b"c" + f"{module}\n{name}\n".encode()


def _str(text):
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(value):
    return b"J" + struct.pack("<i", value)


def _tuple(items):
    return b"(" + b"".join(items) + b"t"


def _dict(pairs):
    return b"}(" + b"".join(_str(k) + v for k, v in pairs) + b"u"


def _tensor(key, numel, offset, size, stride, storage="FloatStorage"):
    """What torch.save writes for a tensor: _rebuild_tensor_v2(persistent storage, offset, size, stride, ...)."""
    storage_ref = _tuple([_str("storage"), _global("torch", storage), _str(key), _str("cpu"), _int(numel)]) + b"Q"
    args = [storage_ref, _int(offset), _tuple([_int(s) for s in size]), _tuple([_int(s) for s in stride]),
            b"\x89", _global("collections", "OrderedDict") + b")R"]
    return _global("torch._utils", "_rebuild_tensor_v2") + _tuple(args) + b"R"


def _write_pth(path, body, storages=None, prefix="archive"):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{prefix}/data.pkl", b"\x80\x02" + body + b".")
        archive.writestr(f"{prefix}/byteorder", "little")
        for key, raw in (storages or {}).items():
            archive.writestr(f"{prefix}/data/{key}", raw)
    return path


# --- the real thing ---------------------------------------------------------------------------
def test_reads_official_peleenet_checkpoint(fixtures_dir):
    state = read_torch_checkpoint(fixtures_dir / "official_peleenet.pth.tar")
    reference = json.loads((fixtures_dir / "reference_state_dicts.json").read_text())["peleenet"]
    assert len(state) == len(reference["state_dict"]) == 680
    # `state_dict` unwrapped, DataParallel's `module.` stripped, order and shapes as the original
    assert [(k, list(v.shape)) for k, v in state.items()] == [(k, s) for k, s in reference["state_dict"]]
    assert state["classifier.weight"].dtype == np.float32
    assert state["features.transition4.norm.num_batches_tracked"].dtype == np.int64


# --- layout: offsets, strides, shared storages, dtypes ----------------------------------------
def test_strided_views_of_a_shared_storage(tmp_path):
    storage = np.arange(12, dtype=np.float32)
    body = _dict([
        ("module.full", _tensor("0", 12, 0, (3, 4), (4, 1))),
        ("module.transposed", _tensor("0", 12, 0, (4, 3), (1, 4))),   # torch: full.t()
        ("module.column", _tensor("0", 12, 1, (3,), (4,))),           # torch: full[:, 1]
        ("module.tail", _tensor("0", 12, 10, (2,), (1,))),            # torch: flat[10:]
        ("module.scalar", _tensor("0", 12, 5, (), ())),               # torch: flat[5]
        ("module.empty", _tensor("0", 12, 0, (0, 3), (3, 1))),
    ])
    state = read_torch_checkpoint(_write_pth(tmp_path / "views.pth", body, {"0": storage.tobytes()}))
    full = storage.reshape(3, 4)
    assert sorted(state) == ["column", "empty", "full", "scalar", "tail", "transposed"]
    np.testing.assert_array_equal(state["full"], full)
    np.testing.assert_array_equal(state["transposed"], full.T)
    np.testing.assert_array_equal(state["column"], full[:, 1])
    np.testing.assert_array_equal(state["tail"], [10, 11])
    assert state["scalar"].shape == () and state["scalar"] == 5
    assert state["empty"].shape == (0, 3)
    state["transposed"][0, 0] = -1  # results are copies, not views of one buffer
    assert state["full"][0, 0] == 0


def test_storage_dtypes(tmp_path):
    bf16 = np.array([0x3F80, 0xC000, 0x3F00], dtype="<u2")  # bfloat16 bits of 1.0, -2.0, 0.5
    body = _dict([("half", _tensor("0", 2, 0, (2,), (1,), "HalfStorage")),
                  ("long", _tensor("1", 2, 0, (2,), (1,), "LongStorage")),
                  ("bf16", _tensor("2", 3, 0, (3,), (1,), "BFloat16Storage"))])
    storages = {"0": np.array([1.5, -3], "<f2").tobytes(), "1": np.array([7, -9], "<i8").tobytes(),
                "2": bf16.tobytes()}
    state = read_torch_checkpoint(_write_pth(tmp_path / "dtypes.pt", body, storages))
    assert state["half"].dtype == np.float16 and state["half"].tolist() == [1.5, -3]
    assert state["long"].dtype == np.int64 and state["long"].tolist() == [7, -9]
    assert state["bf16"].dtype == np.float32 and state["bf16"].tolist() == [1.0, -2.0, 0.5]


def test_out_of_bounds_tensor_is_rejected(tmp_path):
    body = _dict([("w", _tensor("0", 4, 2, (3,), (1,)))])  # needs elements 2..4 of a 4-element storage
    path = _write_pth(tmp_path / "oob.pth", body, {"0": np.zeros(4, np.float32).tobytes()})
    with pytest.raises(Exception, match="exceeds its storage"):
        read_torch_checkpoint(path)


# --- refusal of code --------------------------------------------------------------------------
@pytest.mark.parametrize("module,name,make_call", [
    ("os", "system", lambda g, arg: g + _tuple([arg]) + b"R"),            # GLOBAL + REDUCE
    ("posix", "system", lambda g, arg: g + _tuple([arg]) + b"R"),         # what pickle.dumps(os.system) names
    ("os", "system", lambda g, arg: b"\x80\x04" + _str("os") + _str("system") + b"\x93"
     + _tuple([arg]) + b"R"),                                             # STACK_GLOBAL (protocol 4)
    ("os", "system", lambda g, arg: b"(" + arg + b"ios\nsystem\n"),       # INST
])
def test_pickle_calling_os_system_is_refused(tmp_path, module, name, make_call):
    sentinel = tmp_path / "pwned"
    call = make_call(_global(module, name), _str(f"touch {sentinel}"))
    path = _write_pth(tmp_path / "evil.pth", _dict([("state_dict", call)]))
    with pytest.raises(UnsafeCheckpointError,
                       match=rf"refusing to load '{module}\.{name}' from .*evil\.pth: only tensors"):
        read_torch_checkpoint(path)
    assert not sentinel.exists(), "the pickled call ran"


def test_other_globals_are_refused_too(tmp_path):
    call = _global("builtins", "eval") + _tuple([_str("1 + 1")]) + b"R"
    path = _write_pth(tmp_path / "eval.pth", _dict([("w", call)]))
    with pytest.raises(UnsafeCheckpointError, match="refusing to load 'builtins.eval'"):
        read_torch_checkpoint(path)


# --- not a checkpoint -------------------------------------------------------------------------
def test_garbage_file_is_a_clear_error(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(ValueError, match="not a PyTorch zip checkpoint"):
        read_torch_checkpoint(path)


def test_legacy_format_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "legacy.pth"
    path.write_bytes(b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.")  # pickled legacy magic number
    with pytest.raises(ValueError, match="legacy"):
        read_torch_checkpoint(path)


def test_zip_without_data_pkl_is_a_clear_error(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="not a torch.save checkpoint"):
        read_torch_checkpoint(path)


def test_dict_of_non_tensors_is_not_a_state_dict(tmp_path):
    path = _write_pth(tmp_path / "plain.pth", _dict([("epoch", _int(3))]))
    with pytest.raises(ValueError, match="not tensors: epoch"):
        read_torch_checkpoint(path)


def test_safetensors_header_starting_with_0x80_is_not_taken_for_a_pickle(tmp_path):
    """A safetensors file starts with its header length, little-endian; when the low byte is 0x80
    (one file in 256, a real timm ResNet-50 export did) it looks like a pickle's first opcode."""
    from safetensors.numpy import save_file
    from common.weights import read_weights
    path = tmp_path / "weights.safetensors"
    tensors = {"conv1.weight": np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)}
    for pad in range(256):  # grow the header until its length's low byte is 0x80
        save_file(tensors, str(path), metadata={"pad": "x" * pad})
        if path.read_bytes()[:1] == b"\x80":
            break
    assert path.read_bytes()[:1] == b"\x80"
    found = read_weights(str(path))
    assert found.fmt == "safetensors"
    np.testing.assert_array_equal(found.tensors["conv1.weight"], tensors["conv1.weight"])
