"""The builder's promises: drop_rate means what it says in every family, and the preprocessing keys a
user left unset come from the model's pretrained_cfg (set ones win)."""
import mindspore as ms
import mindspore.nn as nn
import numpy as np
import pytest

from common.builder import IMAGENET_MEAN, resolve_data_config
from common.config import Config, parse_args
from common.registry import _MODELS, _PRETRAINED_CFGS, create_model, register_model

ONE_PER_FAMILY = ("dla46_c", "peleenet", "multigrain_resnet50")


def _dropouts(net):
    return [cell for _, cell in net.cells_and_names() if isinstance(cell, nn.Dropout)]


@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_drop_rate_zero_turns_dropout_off_and_a_rate_is_used_as_given(name):
    assert _dropouts(create_model(name, num_classes=10, drop_rate=0.0)) == []
    dropouts = _dropouts(create_model(name, num_classes=10, drop_rate=0.1))
    assert len(dropouts) == 1 and dropouts[0].p == pytest.approx(0.1)


def test_the_configs_drop_rate_is_what_runs_even_where_the_model_default_differs():
    """PeleeNet's API default is 0.05 (the paper); a config's 0 must still turn it off."""
    from common.runtime import build_net
    assert len(_dropouts(create_model("peleenet", num_classes=10))) == 1  # the API default: on
    cfg = parse_args(["--model", "peleenet", "--num_classes", "10", "--drop_rate", "0"])
    assert _dropouts(build_net(cfg)) == []


def test_multigrain_drops_out_on_the_classifier_path_only():
    net = create_model("multigrain_resnet50", num_classes=10, drop_rate=0.9)
    net.set_train(True)
    x = ms.Tensor(np.random.RandomState(0).randn(2, 3, 64, 64).astype(np.float32))
    emb_a, emb_b = net.forward_embedding(x).asnumpy(), net.forward_embedding(x).asnumpy()
    np.testing.assert_array_equal(emb_a, emb_b)  # batch-stat BN is deterministic: no dropout here
    logits_a, logits_b = net.forward_train(x)[0].asnumpy(), net.forward_train(x)[0].asnumpy()
    assert not np.array_equal(logits_a, logits_b)  # p = 0.9 before the classifier


PRETRAINED = {"input_size": (3, 96, 96), "crop_pct": 0.9, "interpolation": "bicubic",
              "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


def test_resolve_data_config_fills_unset_keys_from_the_pretrained_cfg():
    assert resolve_data_config(Config(), PRETRAINED) == {
        "image_size": 96, "crop_pct": 0.9, "interpolation": "bicubic", "mean": [0.5] * 3, "std": [0.25] * 3}
    given = Config(image_size=64, mean=[0.1, 0.2, 0.3], crop_pct=None)
    resolved = resolve_data_config(given, PRETRAINED)
    assert resolved["image_size"] == 64 and resolved["mean"] == [0.1, 0.2, 0.3]  # set keys win
    assert resolved["crop_pct"] == 0.9  # None counts as unset


default_cfgs = {"t6_data_cfg_net": dict(PRETRAINED, first_conv="conv", classifier="fc")}


@pytest.fixture
def data_cfg_model():
    """A model registered only for this test (its pretrained_cfg differs from every config default)."""
    def t6_data_cfg_net(num_classes=10, **kwargs):
        return nn.Dense(3, num_classes)
    register_model(t6_data_cfg_net)
    yield "t6_data_cfg_net"
    _MODELS.pop("t6_data_cfg_net")
    _PRETRAINED_CFGS.pop("t6_data_cfg_net")


def test_parse_args_takes_unset_preprocessing_from_the_model(data_cfg_model, tmp_path):
    cfg = parse_args(["--model", data_cfg_model])
    assert (cfg.image_size, cfg.crop_pct, cfg.interpolation) == (96, 0.9, "bicubic")
    assert (cfg.mean, cfg.std) == ([0.5] * 3, [0.25] * 3)
    # a yaml value and the Paddle alias image_shape count as set
    path = tmp_path / "c.yaml"
    path.write_text(f"model: {data_cfg_model}\ncrop_pct: 0.8\nmean: {list(IMAGENET_MEAN)}\n")
    cfg = parse_args(["--config_path", str(path), "--image_shape", "[3,64,64]"])
    assert (cfg.image_size, cfg.crop_pct, cfg.interpolation) == (64, 0.8, "bicubic")
    assert cfg.mean == list(IMAGENET_MEAN) and cfg.std == [0.25] * 3
