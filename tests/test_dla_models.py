"""DLA: exact parameter counts (REFERENCE.md / timm), state layout vs timm, timm logits, forward/backward."""
import json

import numpy as np
import pytest
import mindspore as ms
from mindspore import nn, ops

from common import create_model, list_models
from common.checkpoint import match_weights
from common.convert import to_net_names

# REFERENCE.md's table (timm's counts), an external source: not computed by our code.
DLA_PARAMS = {"dla34": 15_742_104, "dla46_c": 1_301_400, "dla46x_c": 1_068_440, "dla60": 22_036_632,
              "dla60x": 17_352_344, "dla60x_c": 1_319_832, "dla102": 33_268_888, "dla102x": 26_309_272,
              "dla102x2": 41_282_200, "dla169": 53_389_720}


def n_params(net):
    return sum(int(np.prod(p.shape)) for p in net.trainable_params())


def test_registry_lists_all_ten_dla_variants():
    assert set(list_models("dla*")) == set(DLA_PARAMS)


@pytest.mark.parametrize("name", sorted(DLA_PARAMS))
def test_parameter_count_matches_reference(name):
    assert n_params(create_model(name, num_classes=1000)) == DLA_PARAMS[name]


@pytest.mark.parametrize("name", sorted(DLA_PARAMS))
def test_every_timm_key_maps_shape_for_shape(name, fixtures_dir):
    """Every entry of timm's state_dict (reference_state_dicts.json) fills our net exactly."""
    ref = json.loads((fixtures_dir / "reference_state_dicts.json").read_text())[name]
    fake = {key: np.zeros(shape, np.float32) for key, shape in ref["state_dict"]}
    net = create_model(name)
    mapped = match_weights(net, to_net_names(fake, net, "torch")).weights  # strict: raises on any gap
    assert set(mapped) == {p.name for p in net.get_parameters()}
    assert ref["params"] == DLA_PARAMS[name]


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError) as err:
        create_model("dla35")
    assert "dla34" in str(err.value) and "dla169" in str(err.value) and "Did you mean" in str(err.value)


def test_timm_weights_reproduce_timm_logits(fixtures_dir, graph_mode):
    net = create_model("dla46_c", checkpoint_path=str(fixtures_dir / "timm_dla46_c.safetensors"))
    net.set_train(False)
    io = np.load(fixtures_dir / "timm_dla46_c_io.npz")
    ours = net(ms.Tensor(io["input"])).asnumpy()
    ref = io["logits"]
    assert np.abs(ours - ref).max() <= 1e-4 * np.abs(ref).max()
    assert (ours.argmax(1) == ref.argmax(1)).all()


def test_convert_script_writes_a_loadable_checkpoint(fixtures_dir, tmp_path):
    from conftest import run_script
    out = tmp_path / "dla46_c.ckpt"
    proc = run_script("scripts/convert_weights.py", fixtures_dir / "timm_dla46_c.safetensors", out,
                      "--arch", "dla46_c")
    assert "dla46_c" in proc.stdout
    net = create_model("dla46_c", checkpoint_path=str(out))
    net.set_train(False)
    io = np.load(fixtures_dir / "timm_dla46_c_io.npz")
    ours = net(ms.Tensor(io["input"])).asnumpy()
    assert np.abs(ours - io["logits"]).max() <= 1e-4 * np.abs(io["logits"]).max()


def test_convert_script_refuses_the_wrong_arch(fixtures_dir, tmp_path):
    from conftest import run_script
    proc = run_script("scripts/convert_weights.py", fixtures_dir / "timm_dla46_c.safetensors",
                      tmp_path / "x.ckpt", "--arch", "dla34", check=False)
    assert proc.returncode == 2
    # one line naming the file and the model it was given to (issue 25)
    assert proc.stderr.count("\n") == 1 and "timm_dla46_c.safetensors does not fit a dla34 model" in proc.stderr
    assert not (tmp_path / "x.ckpt").exists()


@pytest.mark.parametrize("name", ["dla34", "dla46x_c", "dla102"])
def test_forward_backward_graph_mode(name, graph_mode):
    """32x32 input (the smallest a stride-32 net takes): logits of the right shape, finite, and every parameter gets a gradient."""
    net = create_model(name, num_classes=7)
    loss_net = nn.WithLossCell(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"))
    x = ms.Tensor(np.random.RandomState(0).randn(2, 3, 32, 32).astype(np.float32))
    y = ms.Tensor(np.array([1, 5], np.int32))
    grads = ops.GradOperation(get_by_list=True)(loss_net, net.trainable_params())(x, y)
    assert all(np.isfinite(g.asnumpy()).all() for g in grads)
    assert all(np.abs(g.asnumpy()).sum() > 0 for g in grads)
    net.set_train(False)
    assert net(x).shape == (2, 7)


def test_reset_classifier_to_features():
    net = create_model("dla46_c")
    net.reset_classifier(0)
    net.set_train(False)
    out = net(ms.Tensor(np.zeros((1, 3, 64, 64), np.float32)))
    assert out.shape == (1, net.num_features) == (1, 256)
