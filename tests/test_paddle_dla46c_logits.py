"""A PaddleClas DLA46_c checkpoint, loaded straight from .pdparams, reproduces PaddleClas's outputs.

``paddleclas_dla46_c_io.npz`` holds an input and the logits / pooled features PaddleClas
(paddlepaddle 3.3.1) computed for it with the weights in the two .pdparams fixtures.
"""
import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path before the first MindSpore op)
import mindspore as ms
from common import create_model

TOLERANCE = 1e-4  # of max |reference|, as the fixtures' README asks


def _assert_close(ours, ref, what):
    err = float(np.max(np.abs(ours - ref)))
    assert err <= TOLERANCE * float(np.max(np.abs(ref))), f"{what}: max abs diff {err:.3g}"


@pytest.fixture(scope="module")
def reference(fixtures_dir):
    with np.load(fixtures_dir / "paddleclas_dla46_c_io.npz") as data:
        assert str(data["model"]) == "DLA46_c" and int(data["class_num"]) == 1000
        return {k: data[k] for k in ("input", "logits", "pooled")}


@pytest.mark.parametrize("fixture", ["paddleclas_dla46_c.pdparams", "paddleclas_dla46_c_np1_proto2.pdparams"])
def test_pdparams_reproduces_paddleclas(fixture, fixtures_dir, reference):
    net = create_model("dla46_c", checkpoint_path=str(fixtures_dir / fixture))
    net.set_train(False)
    x = ms.Tensor(reference["input"])
    _assert_close(net(x).asnumpy(), reference["logits"], f"{fixture} logits")
    pooled = net.forward_head(net.forward_features(x), pre_logits=True).asnumpy()
    _assert_close(pooled, reference["pooled"], f"{fixture} pooled features")
