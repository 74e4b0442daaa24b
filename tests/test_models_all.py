"""Every registered model keeps the same contract (timm's test_models loop): forward and backward at
64 px, ``num_features`` is the width ``reset_classifier(0)`` leaves, its ``pretrained_cfg`` names real
first-conv and classifier parameters, and a family record owns it."""
import mindspore as ms
import numpy as np
import pytest

from common.family import family_of
from common.registry import create_model, list_models

# The wider/deeper ones (9-18 s each on a loaded 2-core CPU; the whole loop ~140 s): `slow`, still run in CI.
HEAVY = {"dla60", "dla60x", "dla102", "dla102x", "dla102x2", "dla169", "multigrain", "multigrain_resnet50"}
NUM_CLASSES = 7


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n
                                  for n in list_models()])
def test_model_contract(name, pynative_mode):
    net = create_model(name, num_classes=NUM_CLASSES)
    record = family_of(name)
    assert record is not None and name in record.models
    names = {p.name for p in net.get_parameters()}
    cfg = net.pretrained_cfg
    assert cfg["architecture"] == name
    assert cfg["first_conv"] + ".weight" in names and cfg["classifier"] + ".weight" in names
    assert net.get_classifier().weight.name == cfg["classifier"] + ".weight"

    x = ms.Tensor(np.random.RandomState(0).randn(2, 3, 64, 64).astype(np.float32))
    net.set_train(True)
    weights = net.trainable_params()

    def loss_fn(inputs):
        return (net(inputs) ** 2).mean()

    loss, grads = ms.value_and_grad(loss_fn, None, weights)(x)
    assert np.isfinite(loss.asnumpy())
    dead = [w.name for w, g in zip(weights, grads) if not np.any(g.asnumpy())]
    assert dead == [], f"parameters without gradient: {dead[:5]}"

    net.set_train(False)
    logits = net(x).asnumpy()
    assert logits.shape == (2, NUM_CLASSES) and np.isfinite(logits).all()
    net.reset_classifier(0)
    pooled = net(x).asnumpy()
    assert pooled.shape == (2, net.num_features) and np.isfinite(pooled).all()
