"""PeleeNet against the official implementation: size, state_dict layout, logits; graph-mode training step."""
import json

import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path before the first MindSpore op)
import mindspore as ms
from mindspore import nn

from common import create_model, list_models
from common.checkpoint import match_weights
from common.convert import to_net_names
from common.weights.torch_reader import read_torch_checkpoint

PAPER_PARAMS = 2_802_248  # PeleeNet paper / official peleenet.py at 1000 classes


def _count(net):
    return sum(int(np.prod(p.shape)) for p in net.trainable_params())


def _load(net, weights):
    params = {name: ms.Parameter(ms.Tensor(value), name=name) for name, value in weights.items()}
    not_loaded, unused = ms.load_param_into_net(net, params, strict_load=True)
    assert not not_loaded and not unused


def test_registered_and_parameter_count(fixtures_dir):
    assert "peleenet" in list_models()
    reference = json.loads((fixtures_dir / "reference_state_dicts.json").read_text())["peleenet"]
    net = create_model("peleenet")
    assert _count(net) == PAPER_PARAMS == reference["params"]
    assert sum(isinstance(c, nn.Dropout) for _, c in net.cells_and_names()) == 1  # only before the classifier


def test_state_layout_matches_official(fixtures_dir):
    """Every official key maps onto one of our parameters shape-for-shape, and nothing is left over."""
    reference = json.loads((fixtures_dir / "reference_state_dicts.json").read_text())["peleenet"]["state_dict"]
    net = create_model("peleenet")
    fake = {key: np.zeros(shape, np.float32) for key, shape in reference}
    converted = match_weights(net, to_net_names(fake, net, "torch")).weights  # strict: any missing/extra/misshapen key raises
    ours = {p.name: tuple(p.shape) for p in net.get_parameters()}
    assert {k: v.shape for k, v in converted.items()} == ours
    assert len(ours) == sum(not k.endswith("num_batches_tracked") for k, _ in reference)


def test_official_checkpoint_reproduces_official_logits(fixtures_dir):
    io = np.load(fixtures_dir / "official_peleenet_io.npz")
    net = create_model("peleenet")
    state = read_torch_checkpoint(fixtures_dir / "official_peleenet.pth.tar")
    _load(net, match_weights(net, to_net_names(state, net, "torch")).weights)
    net.set_train(False)
    logits = net(ms.Tensor(io["input"])).asnumpy()
    ref = io["logits"]
    assert logits.shape == ref.shape == (2, 1000)
    assert np.abs(logits - ref).max() <= 1e-4 * np.abs(ref).max()


@pytest.mark.usefixtures("graph_mode")
def test_create_model_loads_official_checkpoint(fixtures_dir):
    """The user path, as eval.py runs it: ``create_model(..., checkpoint_path=X.pth.tar)`` in GRAPH_MODE."""
    io = np.load(fixtures_dir / "official_peleenet_io.npz")
    net = create_model("peleenet", checkpoint_path=str(fixtures_dir / "official_peleenet.pth.tar"))
    net.set_train(False)
    logits = net(ms.Tensor(io["input"][:1])).asnumpy()
    assert np.abs(logits - io["logits"][:1]).max() <= 1e-4 * np.abs(io["logits"]).max()


def test_pooled_features_without_classifier():
    net = create_model("peleenet", num_classes=0)
    net.set_train(False)
    feats = net(ms.Tensor(np.random.default_rng(0).standard_normal((1, 3, 64, 64)), ms.float32))
    assert feats.shape == (1, net.num_features) == (1, 704)


@pytest.mark.slow
@pytest.mark.usefixtures("graph_mode")
def test_graph_mode_forward_backward():
    net = create_model("peleenet", num_classes=10)
    net.set_train(True)
    loss_fn = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    params = net.trainable_params()

    def forward(x, y):
        logits = net(x)
        return loss_fn(logits, y), logits

    grad_fn = ms.value_and_grad(forward, None, params, has_aux=True)
    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.standard_normal((2, 3, 64, 64)), ms.float32)
    y = ms.Tensor(np.array([1, 7]), ms.int32)
    (loss, logits), grads = grad_fn(x, y)
    assert logits.shape == (2, 10)
    assert np.isfinite(loss.asnumpy()) and np.isfinite(logits.asnumpy()).all()
    assert len(grads) == len(params)
    for param, grad in zip(params, grads):
        grad = grad.asnumpy()
        assert np.isfinite(grad).all() and np.abs(grad).max() > 0, f"no gradient for {param.name}"
