"""The .pdparams reader: both fixture forms load, and hostile or broken pickles are refused."""
import json
import pickle
import struct

import numpy as np
import pytest

from common.weights.paddle_reader import (PdparamsError, UnsafePdparamsError, looks_like_pdparams,
                                          read_pdparams)

CURRENT = "paddleclas_dla46_c.pdparams"          # numpy 2 names, protocol 4
OLDER = "paddleclas_dla46_c_np1_proto2.pdparams"  # numpy 1 names, protocol 2, _codecs.encode


def _unicode(text):
    """BINUNICODE opcode: a str pushed on the pickle stack."""
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _hostile_pdparams(module, name, arg, protocol):
    """A pickled ``{'w': module.name(arg)}`` built opcode by opcode (no pickler involved)."""
    if protocol == 2:
        func = b"c" + f"{module}\n{name}\n".encode()             # GLOBAL
    else:
        func = _unicode(module) + _unicode(name) + b"\x93"       # STACK_GLOBAL
    return (b"\x80" + bytes([protocol]) + b"}" + _unicode("w")   # PROTO, EMPTY_DICT, key
            + func + _unicode(arg) + b"\x85" + b"R"              # args tuple, REDUCE: the call
            + b"s" + b".")                                       # SETITEM, STOP


def _payloads(sentinel):
    """(module, name, argument) calls that each create ``sentinel`` when executed."""
    code = f"open({str(sentinel)!r}, 'w').close()"
    return [
        ("os", "system", f"touch '{sentinel}'"),
        ("posix", "system", f"touch '{sentinel}'"),
        ("builtins", "exec", code),
        ("builtins", "eval", f"__import__('os').system(\"touch '{sentinel}'\")"),
        ("subprocess", "getoutput", f"touch '{sentinel}'"),
    ]


def test_both_fixture_forms_read_to_the_same_arrays(fixtures_dir):
    current = read_pdparams(fixtures_dir / CURRENT)
    older = read_pdparams(fixtures_dir / OLDER)
    expected = json.loads((fixtures_dir / "paddle_state_dicts.json").read_text())["models"]["DLA46_c"]
    # keys, order and shapes as PaddleClas's state_dict lists them; the name table is skipped
    assert [(k, list(v.shape)) for k, v in current.items()] == [tuple(x) for x in expected["state_dict"]]
    assert list(older) == list(current)
    for key, value in current.items():
        assert value.dtype == np.float32 and older[key].dtype == np.float32, key
        np.testing.assert_array_equal(older[key], value, err_msg=key)


@pytest.mark.parametrize("protocol", [2, 4])
def test_foreign_global_is_refused_without_running_it(tmp_path, protocol):
    for index, (module, name, arg) in enumerate(_payloads(tmp_path / "ran")):
        sentinel = tmp_path / "ran"
        path = tmp_path / f"evil{index}.pdparams"
        path.write_bytes(_hostile_pdparams(module, name, arg, protocol))
        with pytest.raises(UnsafePdparamsError) as info:
            read_pdparams(path)
        message = str(info.value)
        assert f"refusing '{module}.{name}' in {path.name}" in message
        assert "may only contain numpy arrays" in message
        assert not sentinel.exists(), f"{module}.{name} was executed"
        # control: the same bytes do run under a plain unpickler, so the refusal above mattered
        pickle.loads(path.read_bytes())
        assert sentinel.exists(), f"payload {module}.{name} is not live"
        sentinel.unlink()


def test_numpy_names_outside_the_list_are_refused(tmp_path):
    """Being in the numpy package is not enough: numpy has code-running functions too."""
    path = tmp_path / "np.pdparams"
    path.write_bytes(_hostile_pdparams("numpy.testing._private.utils", "runstring", "1", 4))
    with pytest.raises(UnsafePdparamsError, match="'numpy.testing._private.utils.runstring'"):
        read_pdparams(path)


def test_persistent_id_is_refused(tmp_path):
    path = tmp_path / "pid.pdparams"
    path.write_bytes(b"\x80\x02}" + _unicode("w") + _unicode("storage") + b"Q" + b"s.")  # BINPERSID
    with pytest.raises(UnsafePdparamsError, match="refusing persistent id 'storage'"):
        read_pdparams(path)


@pytest.mark.parametrize("content", [b"", b"not a pickle at all\n" * 10, bytes(range(256)) * 4],
                         ids=["empty", "text", "binary"])
def test_garbage_file_gives_a_clear_error(tmp_path, content):
    path = tmp_path / "garbage.pdparams"
    path.write_bytes(content)
    with pytest.raises(PdparamsError, match="garbage.pdparams is not a readable .pdparams file"):
        read_pdparams(path)


def test_truncated_file_gives_a_clear_error(tmp_path, fixtures_dir):
    path = tmp_path / "cut.pdparams"
    path.write_bytes((fixtures_dir / CURRENT).read_bytes()[:100_000])
    with pytest.raises(PdparamsError, match="cut.pdparams is not a readable .pdparams file"):
        read_pdparams(path)


def test_pickle_that_is_not_a_dict_of_arrays_is_rejected(tmp_path):
    path = tmp_path / "list.pdparams"
    path.write_bytes(pickle.dumps([np.zeros(3, np.float32)], protocol=2))
    with pytest.raises(PdparamsError, match="holds a pickled list"):
        read_pdparams(path)
    path.write_bytes(pickle.dumps({"w": np.zeros(3, np.float32), "names": np.array(["a", 1], object)},
                                  protocol=2))
    with pytest.raises(PdparamsError, match="not numeric numpy arrays: names"):
        read_pdparams(path)


def test_arrays_split_by_paddle_save_are_joined(tmp_path):
    """paddle.save (protocol 2/3) splits arrays over 4 GB into flat 'key@@.i' parts."""
    weight = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    flat = weight.ravel()
    saved = {"bias": np.ones(2, np.float32), "weight@@.0": flat[:10], "weight@@.1": flat[10:],
             "UnpackBigParamInfor@@": {"weight": {"OriginShape": (2, 3, 4),
                                                  "slices": ["weight@@.0", "weight@@.1"]}},
             "StructuredToParameterName@@": {"weight": "conv2d_0.w_0", "bias": "conv2d_0.b_0"}}
    path = tmp_path / "split.pdparams"
    path.write_bytes(pickle.dumps(saved, protocol=2))
    state = read_pdparams(path)
    assert sorted(state) == ["bias", "weight"]
    np.testing.assert_array_equal(state["weight"], weight)


def test_content_sniffing(tmp_path, fixtures_dir):
    assert looks_like_pdparams(fixtures_dir / CURRENT)
    assert looks_like_pdparams(fixtures_dir / OLDER)
    for other in ("official_peleenet.pth.tar", "timm_dla46_c.safetensors", "timm_dla46_c_io.npz"):
        assert not looks_like_pdparams(fixtures_dir / other), other
    legacy_torch = tmp_path / "legacy.pth"  # torch.save without zip: starts with a pickled magic int
    legacy_torch.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps({}, protocol=2))
    assert not looks_like_pdparams(legacy_torch)
