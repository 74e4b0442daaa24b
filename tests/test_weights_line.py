"""Loading weights is one straight line: every way in (``create_model(checkpoint_path=...)``,
``build_net``, backbone mode, ``scripts/convert_weights.py``) reads the file once (common.weights),
renames once (common.convert) and fits once (common.checkpoint), in that order, for every format; and
the fitting rules, native (.ckpt) and foreign (safetensors/torch/paddle), on a tiny net whose expected
names and values are written out here."""
import gc
import logging
import sys
import types

import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path before the first MindSpore op)
import mindspore as ms
from mindspore import nn
from safetensors.numpy import save_file

from common import create_model
from common.checkpoint import load_weights
from common.errors import WeightsError
from conftest import load_script

# --------------------------------------------------------------------------- the walk

_STEP_OF = {"common.weights": "common.weights", "common.convert": "common.convert",
            "common.paddle": "common.convert",  # Paddle's renaming rules, called by the rename step only
            "common.checkpoint": "common.checkpoint"}


def _walk(call):
    """The weight-loading modules ``call()`` enters, in order, repeats in a row merged (one entry
    per visit), from a profile of every Python call."""
    visits = []

    def profile(frame, event, _arg):
        if event != "call":
            return
        module = frame.f_globals.get("__name__", "")
        step = _STEP_OF.get(module) or ("common.weights" if module.startswith("common.weights.") else None)
        if step and (not visits or visits[-1] != step):
            visits.append(step)

    gc.collect()  # an earlier test's unfinished generator, closed by a collection during call(), is no visit
    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return visits


THE_LINE = ["common.checkpoint", "common.weights", "common.convert", "common.checkpoint"]  # door, read, rename, fit


@pytest.fixture(scope="module")
def dla46_c_ckpt(tmp_path_factory, fixtures_dir):
    path = tmp_path_factory.mktemp("walk") / "dla46_c.ckpt"
    net = create_model("dla46_c", checkpoint_path=str(fixtures_dir / "timm_dla46_c.safetensors"))
    ms.save_checkpoint(net, str(path), append_dict={"epoch_num": 3})  # as the trainer writes one
    return path


@pytest.mark.parametrize("model, fixture", [("dla46_c", "timm_dla46_c.safetensors"),
                                            ("dla46_c", "paddleclas_dla46_c"),  # a Paddle path without suffix
                                            ("peleenet", "official_peleenet.pth.tar"),
                                            ("dla46_c", None)])  # our own .ckpt
def test_every_format_walks_read_rename_fit_once(model, fixture, fixtures_dir, dla46_c_ckpt):
    path = str(fixtures_dir / fixture) if fixture else str(dla46_c_ckpt)
    net = create_model(model)
    assert _walk(lambda: load_weights(net, path, arch=model)) == THE_LINE


def _convert_script():
    return load_script("scripts/convert_weights.py")


def test_every_way_in_walks_the_same_line(fixtures_dir, dla46_c_ckpt, tmp_path):
    """create_model, build_net, build_backbone (backbone mode) enter through load_weights; the convert
    script takes load_weights' steps (it saves the fitted tensors instead of loading them)."""
    from common.runtime import build_backbone, build_net
    cfg = types.SimpleNamespace(model="dla46_c", num_classes=1000, drop_rate=0.0, out_indices=[])
    path = str(dla46_c_ckpt)
    assert _walk(lambda: create_model("dla46_c", checkpoint_path=path)) == THE_LINE
    assert _walk(lambda: build_net(cfg, path)) == THE_LINE
    assert _walk(lambda: build_backbone(cfg, path)) == THE_LINE
    assert _walk(lambda: create_model("dla46_c", features_only=True, checkpoint_path=path)) == THE_LINE
    script = _convert_script()
    out = tmp_path / "converted.ckpt"
    walk = _walk(lambda: script.main([str(fixtures_dir / "timm_dla46_c.safetensors"), str(out), "--arch", "dla46_c"]))
    assert walk == THE_LINE[1:]  # its own door: read, rename, fit, then save (checkpoint)
    assert out.is_file()


# --------------------------------------------------------------------------- the fitting rules

class Tiny(nn.Cell):
    """conv -> BatchNorm -> Dense head: ``conv.weight``, ``bn.{gamma,beta,moving_mean,moving_variance}``,
    ``fc.{weight,bias}`` (torch: ``bn.{weight,bias,running_mean,running_var}``)."""

    def __init__(self, num_classes=3):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, has_bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Dense(4, num_classes)

    def get_classifier(self):
        return self.fc

    def construct(self, x):
        return self.fc(self.bn(self.conv(x)).mean(axis=(2, 3)))


def _torch_state(classes=3, seed=0):
    """What torch's ``state_dict()`` of the same net holds."""
    rng = np.random.default_rng(seed)
    return {"conv.weight": rng.standard_normal((4, 2, 3, 3)).astype(np.float32),
            "bn.weight": rng.uniform(0.5, 1.5, 4).astype(np.float32),
            "bn.bias": rng.uniform(-1, 1, 4).astype(np.float32),
            "bn.running_mean": rng.uniform(-1, 1, 4).astype(np.float32),
            "bn.running_var": rng.uniform(0.5, 1.5, 4).astype(np.float32),
            "bn.num_batches_tracked": np.array(5, np.int64),
            "fc.weight": rng.standard_normal((classes, 4)).astype(np.float32),
            "fc.bias": rng.standard_normal(classes).astype(np.float32)}


_OURS = {"conv.weight": "conv.weight", "bn.gamma": "bn.weight", "bn.beta": "bn.bias",
         "bn.moving_mean": "bn.running_mean", "bn.moving_variance": "bn.running_var",
         "fc.weight": "fc.weight", "fc.bias": "fc.bias"}  # our name -> torch's, written out


def _native_state(classes=3, seed=0):
    return {ours: _torch_state(classes, seed)[theirs] for ours, theirs in _OURS.items()}


def _safetensors(tmp_path, state, name="w.safetensors"):
    save_file(state, str(tmp_path / name))
    return str(tmp_path / name)


def _ckpt(tmp_path, state, name="w.ckpt", **extra):
    ms.save_checkpoint([{"name": k, "data": ms.Tensor(v)} for k, v in state.items()], str(tmp_path / name),
                       append_dict=extra or None)
    return str(tmp_path / name)


def _values(net):
    return {p.name: p.asnumpy() for p in net.get_parameters()}


def test_foreign_names_and_layouts_become_ours(tmp_path):
    """BatchNorm's torch names, a float64 tensor and a Linear head stored as a 1x1 conv all land."""
    state = _torch_state()
    state["conv.weight"] = state["conv.weight"].astype(np.float64)
    state["fc.weight"] = state["fc.weight"][:, :, None, None]  # [3, 4, 1, 1]
    net = Tiny()
    assert load_weights(net, _safetensors(tmp_path, state)) == []
    got, torch_state = _values(net), _torch_state()
    for ours, theirs in _OURS.items():
        np.testing.assert_array_equal(got[ours], torch_state[theirs].astype(np.float32), err_msg=ours)


@pytest.mark.parametrize("extra, needle", [({"aux.weight": np.zeros(2, np.float32)}, "1 unused source keys: aux.weight"),
                                           # a MindSpore BN name in a torch-named file names nothing
                                           ({"bn.gamma": np.ones(4, np.float32)}, "1 unused source keys: bn.gamma")])
def test_foreign_extra_tensor_is_refused(tmp_path, extra, needle):
    path = _safetensors(tmp_path, {**_torch_state(), **extra})
    with pytest.raises(WeightsError, match="does not fit this architecture") as err:
        load_weights(Tiny(), path)
    assert needle in str(err.value)


def test_native_extra_tensors_listed_only_with_a_misfit(tmp_path, caplog):
    """A .ckpt's extra tensors are a warning while every parameter fits; when one is missing they are
    listed in the refusal; the trainer's optimizer state and counters never."""
    extra = {"aux.weight": np.zeros(2, np.float32), "moments.conv.weight": np.zeros((4, 2, 3, 3), np.float32)}
    net = Tiny()
    with caplog.at_level(logging.WARNING):
        load_weights(net, _ckpt(tmp_path, {**_native_state(), **extra}, epoch_num=2))
    assert "1 tensor(s) this model does not use, not loaded: aux.weight" in caplog.text
    np.testing.assert_array_equal(_values(net)["bn.gamma"], _torch_state()["bn.weight"])
    state = {k: v for k, v in _native_state().items() if k != "bn.beta"}
    path = _ckpt(tmp_path, {**state, **extra}, name="gap.ckpt", epoch_num=2)
    with pytest.raises(WeightsError) as err:
        load_weights(Tiny(), path, arch="tiny")
    assert str(err.value) == f"{path} does not fit a tiny model — 1 missing: bn.beta; unexpected: aux.weight"


@pytest.mark.parametrize("kind", ["native", "foreign"])
def test_another_class_count(tmp_path, kind, caplog):
    """Refused without allow_new_head (each format in its own words); with it the head is left
    as initialised, named in the log and returned."""
    path = _ckpt(tmp_path, _native_state(5)) if kind == "native" else _safetensors(tmp_path, _torch_state(5))
    with pytest.raises(WeightsError) as err:
        load_weights(Tiny(), path)
    assert str(err.value) == {
        "native": f"{path} was made for 5 classes but this model has 3 (set num_classes to 5, or finetune with "
                  f"--pretrained)",
        "foreign": f"{path} does not fit this architecture — 2 wrong shape: fc.weight (3, 4) <- fc.weight (5, 4), "
                   "fc.bias (3,) <- fc.bias (5,)"}[kind]
    net = Tiny()
    fresh = _values(net)["fc.weight"]
    with caplog.at_level(logging.WARNING):
        assert load_weights(net, path, allow_new_head=True) == ["fc.weight", "fc.bias"]
    np.testing.assert_array_equal(_values(net)["fc.weight"], fresh)
    np.testing.assert_array_equal(_values(net)["conv.weight"], _torch_state()["conv.weight"])
    assert f"classifier not loaded from {path} (class count differs, re-initialised): fc.weight, fc.bias" in caplog.text


def test_a_file_without_a_head(tmp_path):
    """With allow_new_head a foreign file may lack the head (left as initialised); a .ckpt may not."""
    headless = {k: v for k, v in _torch_state().items() if not k.startswith("fc.")}
    assert load_weights(Tiny(), _safetensors(tmp_path, headless), allow_new_head=True) == ["fc.weight", "fc.bias"]
    path = _ckpt(tmp_path, {k: v for k, v in _native_state().items() if not k.startswith("fc.")})
    with pytest.raises(WeightsError, match="2 missing: fc.weight, fc.bias"):
        load_weights(Tiny(), path, allow_new_head=True)


@pytest.mark.parametrize("kind", ["native", "foreign"])
def test_unused_parameters_are_dropped_whatever_their_shape(tmp_path, kind, caplog):
    """A backbone's unused head: the file's tensors for it are dropped and named once, of any shape
    (5 classes into 3); no "classifier" warning, nothing else left out."""
    path = _ckpt(tmp_path, _native_state(5)) if kind == "native" else _safetensors(tmp_path, _torch_state(5))
    net = Tiny()
    with caplog.at_level(logging.WARNING):
        assert load_weights(net, path, unused=("fc.weight", "fc.bias")) == []
    assert f"{path}: 2 tensor(s) the backbone does not use, dropped: fc.bias, fc.weight" in caplog.text
    assert "classifier not loaded" not in caplog.text
    np.testing.assert_array_equal(_values(net)["bn.moving_variance"], _torch_state()["bn.running_var"])
