"""DLA's residual root (dla102, dla102x, dla102x2, dla169) against timm's logits.

The timm logits fixture in ../shared is dla46_c, which has no residual root. tests/fixtures/
timm_dla_residual_root.npz holds tiny DLAs of dla102's and dla169's tree structure with the residual
root (channels divided down), timm's state dict for each and timm's logits for an input
(tools/make_fixtures/timm_dla_residual_root.py wrote it with torch + timm; this test needs neither).
Our ``DLA`` built with the same arguments, loading timm's state dict as a safetensors file (the way
timm publishes weights) through ``load_weights``, must reproduce them.
Which registered variants have the residual root is timm's ``shortcut_root`` per entrypoint."""
import json
from pathlib import Path

import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path before the first MindSpore op)
import mindspore as ms
from safetensors.numpy import save_file

from common.checkpoint import load_weights
from dla.src.dla import DLA, DlaBottleneck, DlaRoot

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "timm_dla_residual_root.npz"
TOLERANCE = 1e-4  # of max |reference|, as ../shared/fixtures/README.md asks
# timm's dla.py: shortcut_root=True in these entrypoints only
RESIDUAL_ROOT = {"dla102", "dla102x", "dla102x2", "dla169"}


def tiny(name):
    """(our DLA with the fixture's arguments, timm's state dict, input, timm's logits)."""
    with np.load(FIXTURE) as data:
        arrays = {k[len(name) + 1:]: data[k] for k in data.files if k.startswith(name + "/")}
    state, offset = {}, 0
    for key, shape in json.loads(str(arrays["state_index"])):
        size = int(np.prod(shape))
        state[key] = arrays["state"][offset:offset + size].reshape(shape)
        offset += size
    assert offset == arrays["state"].size
    net = DLA(levels=arrays["levels"].tolist(), channels=arrays["channels"].tolist(),
              num_classes=int(arrays["num_classes"]), cardinality=int(arrays["cardinality"]),
              base_width=int(arrays["base_width"]), block=DlaBottleneck, shortcut_root=bool(arrays["shortcut_root"]))
    return net, state, arrays["input"], arrays["logits"]


@pytest.mark.usefixtures("pynative_mode")  # GRAPH mode runs these cells in tests/test_dla_models.py
@pytest.mark.parametrize("name", ["dla102_tiny", "dla169x_tiny"])
def test_tiny_residual_root_dla_reproduces_timm_logits(name, tmp_path):
    net, state, x, ref = tiny(name)
    assert any(cell.shortcut for _, cell in net.cells_and_names() if isinstance(cell, DlaRoot))
    save_file(state, str(tmp_path / f"{name}.safetensors"))
    assert load_weights(net, str(tmp_path / f"{name}.safetensors")) == []  # strict: every parameter, every key
    net.set_train(False)
    ours = net(ms.Tensor(x)).asnumpy()
    assert ours.shape == ref.shape
    err = float(np.abs(ours - ref).max())
    assert err <= TOLERANCE * float(np.abs(ref).max()), f"{name}: max |ours - timm| {err:.3g}"


@pytest.mark.parametrize("model", ["dla34", "dla46_c", "dla46x_c", "dla60", "dla60x", "dla60x_c",
                                   "dla102", "dla102x", "dla102x2", "dla169"])
def test_registered_variants_have_the_residual_root_where_timm_does(model, monkeypatch):
    """The registered entrypoint's arguments (the network itself is not built: big ones take seconds)."""
    import dla.src.dla as dla_module
    from common.registry import model_entrypoint
    monkeypatch.setattr(dla_module, "build_model_with_cfg", lambda cls, variant, cfg, **kwargs: kwargs)
    assert model_entrypoint(model)(num_classes=10).get("shortcut_root", False) == (model in RESIDUAL_ROOT)
