"""A weights file with one tensor more than the model has: the "unused source keys" strictness.

Foreign files (timm safetensors, PaddleClas .pdparams) are the reference fixtures in ../shared with
one extra tensor added: they must be refused, naming the tensor, while the untouched fixture loads
(so it is the extra key that is refused). A native .ckpt with an extra tensor loads today: only the
stable part is asserted (every parameter filled from the file) and the extra key is named in a
warning (issue 25)."""
import logging
import pickle

import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path before the first MindSpore op)
import mindspore as ms
from safetensors.numpy import load_file, save_file

from common import create_model
from common.checkpoint import load_weights
from common.errors import WeightsError

EXTRA = np.arange(6, dtype=np.float32).reshape(2, 3)


def _params(net):
    return {p.name: p.asnumpy() for p in net.get_parameters()}


@pytest.fixture(scope="module")
def timm_state(fixtures_dir):
    return load_file(str(fixtures_dir / "timm_dla46_c.safetensors"))


def test_timm_safetensors_with_an_extra_tensor_is_refused_naming_it(fixtures_dir, timm_state, tmp_path):
    path = tmp_path / "dla46_c_extra.safetensors"
    save_file({**timm_state, "head.extra.weight": EXTRA}, str(path))
    load_weights(create_model("dla46_c"), str(fixtures_dir / "timm_dla46_c.safetensors"))  # as published: fits
    with pytest.raises(WeightsError, match=r"1 unused source keys: head\.extra\.weight"):
        load_weights(create_model("dla46_c"), str(path))
    with pytest.raises(WeightsError, match="unused source keys"):  # the registry's path: the same check
        create_model("dla46_c", checkpoint_path=str(path))


def test_pdparams_with_an_extra_tensor_is_refused_naming_it(fixtures_dir, tmp_path):
    with open(fixtures_dir / "paddleclas_dla46_c.pdparams", "rb") as f:
        state = pickle.load(f)  # the trusted fixture, a plain dict of numpy arrays
    path = tmp_path / "dla46_c_extra.pdparams"
    with open(path, "wb") as f:
        pickle.dump({**state, "extra_fc.weight": EXTRA}, f, protocol=4)
    load_weights(create_model("dla46_c"), str(fixtures_dir / "paddleclas_dla46_c.pdparams"))
    with pytest.raises(WeightsError, match=r"unused source keys: extra_fc\.weight"):
        load_weights(create_model("dla46_c"), str(path))


def test_native_ckpt_with_an_extra_tensor_fills_every_parameter(fixtures_dir, tmp_path, caplog):
    """The extra tensor is named in a warning (no error); every parameter comes from the file, none is
    left as initialised."""
    source = create_model("dla46_c", checkpoint_path=str(fixtures_dir / "timm_dla46_c.safetensors"))
    path = tmp_path / "dla46_c_extra.ckpt"
    ms.save_checkpoint(source, str(path), append_dict={"head.extra.weight": ms.Tensor(EXTRA)})
    assert "head.extra.weight" in ms.load_checkpoint(str(path))
    net = create_model("dla46_c")
    with caplog.at_level(logging.WARNING):
        assert load_weights(net, str(path), arch="dla46_c") == []
    assert f"{path} has 1 tensor(s) a dla46_c model does not use, not loaded: head.extra.weight" in caplog.text
    want, got = _params(source), _params(net)
    assert set(got) == set(want)
    for name, value in want.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
