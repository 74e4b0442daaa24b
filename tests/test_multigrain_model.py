"""MultiGrain network: parameter counts (card / torchvision ResNet-50), GeM against its closed form,
outputs, the settable p, export heads."""
import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path before MindSpore runs)
import mindspore as ms
from common import create_model, list_models

RESNET50_PARAMS_1000 = 25_557_032   # torchvision / ModelZoo ResNet-50, 1000 classes
CARD_PARAMS = 25.5e6                # ModelZoo MultiGrain card: "25.5 M", 1001 classes


def _count(net):
    return sum(p.size for p in net.trainable_params())


def test_registered_names_and_card_default_classes():
    assert {"multigrain", "multigrain_resnet50"} <= set(list_models("multigrain*"))
    from multigrain.src.multigrain import multigrain_resnet50
    assert multigrain_resnet50().num_classes == 1001


def test_param_count_matches_resnet50_and_card():
    net = create_model("multigrain_resnet50", num_classes=1000)
    # GeM's p is not trainable, so the count is exactly ResNet-50's.
    assert _count(net) == RESNET50_PARAMS_1000
    assert len(net.trainable_params()) == 161
    card = create_model("multigrain", num_classes=1001)
    assert _count(card) == RESNET50_PARAMS_1000 + 2048 + 1
    assert abs(_count(card) - CARD_PARAMS) / CARD_PARAMS < 0.01


def test_gem_p_is_a_non_trainable_parameter_saved_with_the_weights():
    net = create_model("multigrain_resnet50", num_classes=10)
    names = {p.name: p for p in net.get_parameters()}
    assert "pool.p" in names and not names["pool.p"].requires_grad
    assert "pool.p" not in {p.name for p in net.trainable_params()}
    assert net.get_gem_p() == 3.0


def test_gem_matches_closed_form():
    from multigrain.src.gem import GeM
    rng = np.random.RandomState(0)
    x = rng.rand(2, 3, 4, 5).astype(np.float32) * 2 - 0.5      # some negatives: clamped to eps
    clamped = np.maximum(x.astype(np.float64), 1e-6)
    for p in (1.0, 3.0, 4.0):
        gem = GeM(p=p)
        expected = (clamped ** p).mean(axis=(2, 3)) ** (1 / p)
        np.testing.assert_allclose(gem(ms.Tensor(x)).asnumpy(), expected, rtol=1e-4, atol=1e-6)
    big = GeM(p=60.0)(ms.Tensor(x)).asnumpy()                   # p -> inf tends to max pooling
    np.testing.assert_allclose(big, clamped.max(axis=(2, 3)), rtol=0.05)
    with pytest.raises(ValueError):
        GeM().set_p(0)


def test_outputs_shapes_normalised_embedding_and_classifier_on_raw_pooling(graph_mode):
    from multigrain.src.multigrain import EmbeddingHead, MultiGrainOutputs
    net = create_model("multigrain_resnet50", num_classes=7)
    net.set_train(False)
    x = ms.Tensor(np.random.RandomState(1).rand(2, 3, 64, 64).astype(np.float32))
    logits = net(x).asnumpy()
    out, emb = (t.asnumpy() for t in MultiGrainOutputs(net)(x))
    assert logits.shape == (2, 7) and emb.shape == (2, 2048) and np.isfinite(logits).all()
    np.testing.assert_allclose(out, logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(EmbeddingHead(net)(x).asnumpy(), emb, rtol=1e-5, atol=1e-6)
    # The classifier sees the un-normalised pooled feature: fc(raw) == logits.
    raw = net.forward_head(net.forward_features(x), pre_logits=True).asnumpy()
    weight, bias = net.end_point.weight.asnumpy(), net.end_point.bias.asnumpy()
    np.testing.assert_allclose(raw @ weight.T + bias, logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), emb, atol=1e-4)


def test_set_gem_p_changes_a_compiled_graph(graph_mode):
    from multigrain.src.multigrain import EmbeddingHead
    net = create_model("multigrain_resnet50", num_classes=3)
    net.set_train(False)
    head = EmbeddingHead(net)
    x = ms.Tensor(np.random.RandomState(2).rand(1, 3, 64, 64).astype(np.float32))  # 2x2 before pooling
    at3 = head(x).asnumpy()
    net.set_gem_p(4.0)
    at4 = head(x).asnumpy()
    assert net.get_gem_p() == 4.0
    assert np.abs(at4 - at3).max() > 1e-4
    net.set_gem_p(3.0)
    np.testing.assert_allclose(head(x).asnumpy(), at3, rtol=1e-5, atol=1e-6)


def test_reset_classifier_zero_returns_pooled_features():
    net = create_model("multigrain_resnet50", num_classes=5)
    net.reset_classifier(0)
    net.set_train(False)
    x = ms.Tensor(np.zeros((1, 3, 32, 32), np.float32))
    assert net(x).shape == (1, net.num_features)
    assert net.get_classifier() is net.end_point


def test_checkpoint_without_gem_p_loads_and_keeps_the_configured_p(tmp_path):
    """A ModelZoo ResNet-50 checkpoint has every MultiGrain weight but GeM's p; other gaps still refuse."""
    from common.checkpoint import load_weights
    from common.errors import WeightsError
    source = create_model("multigrain_resnet50", num_classes=10)
    weights = [{"name": p.name, "data": p.data} for p in source.get_parameters() if p.name != "pool.p"]
    ckpt = tmp_path / "resnet50_like.ckpt"
    ms.save_checkpoint(weights, str(ckpt))
    target = create_model("multigrain_resnet50", num_classes=10, gem_p=4.0)
    load_weights(target, str(ckpt))
    assert target.get_gem_p() == 4.0
    np.testing.assert_array_equal(target.conv1.weight.asnumpy(), source.conv1.weight.asnumpy())

    ms.save_checkpoint([w for w in weights if w["name"] != "conv1.weight"], str(ckpt))
    with pytest.raises(WeightsError, match="conv1.weight"):
        load_weights(create_model("multigrain_resnet50", num_classes=10), str(ckpt))


def _timm_resnet50_state(num_classes, rng):
    """A state dict named and shaped as timm's / torchvision's ``resnet50`` (He et al. table 1:
    bottleneck widths 64-512, blocks 3-4-6-3, a 1x1 projection ``downsample`` in each stage's first
    block), written from the architecture, not from our network."""
    state = {}

    def conv(name, cout, cin, k):
        state[f"{name}.weight"] = rng.standard_normal((cout, cin, k, k)).astype(np.float32) * 0.05

    def bn(name, c):
        state.update({f"{name}.weight": rng.uniform(0.5, 1.5, c).astype(np.float32),
                      f"{name}.bias": rng.uniform(-0.1, 0.1, c).astype(np.float32),
                      f"{name}.running_mean": rng.uniform(-0.1, 0.1, c).astype(np.float32),
                      f"{name}.running_var": rng.uniform(0.5, 1.5, c).astype(np.float32),
                      f"{name}.num_batches_tracked": np.array(7, np.int64)})

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    cin = 64
    for stage, blocks in enumerate((3, 4, 6, 3)):
        width = 64 * 2 ** stage
        for i in range(blocks):
            block = f"layer{stage + 1}.{i}"
            for j, (cout, c_in, k) in enumerate(((width, cin, 1), (width, width, 3), (4 * width, width, 1))):
                conv(f"{block}.conv{j + 1}", cout, c_in, k)
                bn(f"{block}.bn{j + 1}", cout)
            if i == 0:
                conv(f"{block}.downsample.0", 4 * width, cin, 1)
                bn(f"{block}.downsample.1", 4 * width)
            cin = 4 * width
    state["fc.weight"] = rng.standard_normal((num_classes, 2048)).astype(np.float32) * 0.01
    state["fc.bias"] = rng.standard_normal(num_classes).astype(np.float32)
    return state


def test_timm_resnet50_weights_initialise_multigrain(tmp_path):
    """MultiGrain starts from an ImageNet ResNet-50: a timm .safetensors loads strictly (its
    ``downsample``/``fc`` names mapped, GeM's p kept as configured). Checked once by hand with torch:
    timm resnet50 + GeM(p=3) and this net on the same file gave the same logits to 6e-7 relative."""
    from safetensors.numpy import save_file
    from common.checkpoint import load_weights
    state = _timm_resnet50_state(10, np.random.default_rng(0))
    assert len([k for k in state if not k.endswith("num_batches_tracked")]) == 267  # timm 1.0.31 resnet50
    path = tmp_path / "resnet50.safetensors"
    save_file(state, str(path))
    net = create_model("multigrain_resnet50", num_classes=10, gem_p=4.0)
    load_weights(net, str(path))
    assert net.get_gem_p() == 4.0
    np.testing.assert_array_equal(net.layer3[0].down_sample_layer[1].moving_variance.asnumpy(),
                                  state["layer3.0.downsample.1.running_var"])
    np.testing.assert_array_equal(net.layer4[2].conv2.weight.asnumpy(), state["layer4.2.conv2.weight"])
    np.testing.assert_array_equal(net.end_point.weight.asnumpy(), state["fc.weight"])
    np.testing.assert_array_equal(net.bn1.gamma.asnumpy(), state["bn1.weight"])
