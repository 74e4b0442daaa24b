"""Backbone mode (``create_model(name, features_only=True)``): the maps equal timm's / the official
PeleeNet's on their fixture weights, every weight format loads with only the head dropped, every
registered model's maps have the declared channels and strides, gradients reach every parameter in
GRAPH mode, and MINDIR / ONNX exports give one output per map with the same values."""
import logging
import re

import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path before the first MindSpore op)
import mindspore as ms
from mindspore import nn, ops
from common import create_model
from common.errors import WeightsError
from conftest import ROOT, run_script

TOLERANCE = 1e-4  # of max |reference| per map, as the fixtures' README asks
FAMILIES = ["dla46_c", "peleenet", "multigrain_resnet50"]


def _assert_maps_close(ours, refs, what):
    assert len(ours) == len(refs), what
    for i, (got, ref) in enumerate(zip(ours, refs)):
        got = got.asnumpy() if hasattr(got, "asnumpy") else got
        assert got.shape == ref.shape, f"{what} map {i}: {got.shape} != {ref.shape}"
        err = float(np.abs(got - ref).max())
        assert err <= TOLERANCE * float(np.abs(ref).max()), f"{what} map {i}: max abs diff {err:.3g}"


def _run(net, x):
    net.set_train(False)
    return net(ms.Tensor(x))


@pytest.fixture(scope="module")
def timm_dla(fixtures_dir):
    with np.load(fixtures_dir / "timm_dla46_c_features_io.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.mark.usefixtures("graph_mode")
def test_dla46_c_maps_equal_timm_features_only(fixtures_dir, timm_dla, caplog):
    """timm ``features_only=True`` (out_indices 1-5 = level1..level5) on the same safetensors."""
    net = create_model("dla46_c", features_only=True, out_indices=tuple(timm_dla["out_indices"]),
                       checkpoint_path=str(fixtures_dir / "timm_dla46_c.safetensors"))
    assert [f["num_chs"] for f in net.feature_info] == timm_dla["channels"].tolist()
    assert [f["reduction"] for f in net.feature_info] == timm_dla["reduction"].tolist()
    _assert_maps_close(_run(net, timm_dla["input"]), [timm_dla[f"f{i}"] for i in range(5)], "dla46_c")
    assert "dropped: fc.bias, fc.weight" in caplog.text  # the head, and only the head


@pytest.mark.usefixtures("graph_mode")
def test_peleenet_maps_equal_official_stem_and_transitions(fixtures_dir, caplog):
    with np.load(fixtures_dir / "official_peleenet_features_io.npz") as data:
        ref = {k: data[k] for k in data.files}
    net = create_model("peleenet", features_only=True,
                       checkpoint_path=str(fixtures_dir / "official_peleenet.pth.tar"))
    assert [f["module"] for f in net.feature_info] == ref["modules"].tolist()
    _assert_maps_close(_run(net, ref["input"]), [ref[f"f{i}"] for i in range(5)], "peleenet")
    assert "dropped: classifier.bias, classifier.weight" in caplog.text


def test_paddleclas_pdparams_into_backbone(fixtures_dir):
    """PaddleClas's own pooled features are the spatial mean of our last map."""
    with np.load(fixtures_dir / "paddleclas_dla46_c_io.npz") as data:
        x, pooled = data["input"], data["pooled"]
    net = create_model("dla46_c", features_only=True, out_indices=[5],
                       checkpoint_path=str(fixtures_dir / "paddleclas_dla46_c.pdparams"))
    (last,) = _run(net, x)
    _assert_maps_close([last.asnumpy().mean(axis=(2, 3))], [pooled], "pdparams level5 pooled")


def test_native_ckpt_with_or_without_head_and_a_missing_key(fixtures_dir, timm_dla, tmp_path):
    """A classification .ckpt and a backbone .ckpt (no head) both load; a missing trunk key does not."""
    classifier = create_model("dla46_c", checkpoint_path=str(fixtures_dir / "timm_dla46_c.safetensors"))
    refs = [timm_dla[f"f{i}"] for i in range(5)]
    ms.save_checkpoint(classifier, str(tmp_path / "cls.ckpt"))
    net = create_model("dla46_c", features_only=True, out_indices=[1, 2, 3, 4, 5],
                       checkpoint_path=str(tmp_path / "cls.ckpt"))
    _assert_maps_close(_run(net, timm_dla["input"]), refs, "from .ckpt")
    ms.save_checkpoint(net, str(tmp_path / "backbone.ckpt"))
    again = create_model("dla46_c", features_only=True, out_indices=[1, 2, 3, 4, 5],
                         checkpoint_path=str(tmp_path / "backbone.ckpt"))
    _assert_maps_close(_run(again, timm_dla["input"]), refs, "from a backbone .ckpt")
    gap = "level4.tree2.tree1.conv2.weight"
    params = [{"name": p.name, "data": p.data} for p in classifier.get_parameters() if p.name != gap]
    assert len(params) == len(classifier.trainable_params()) + len(classifier.untrainable_params()) - 1
    ms.save_checkpoint(params, str(tmp_path / "gap.ckpt"))
    with pytest.raises(WeightsError, match=gap):
        create_model("dla46_c", features_only=True, checkpoint_path=str(tmp_path / "gap.ckpt"))


def test_foreign_file_missing_a_trunk_key_is_an_error(fixtures_dir, tmp_path):
    from safetensors.numpy import load_file, save_file
    state = load_file(str(fixtures_dir / "timm_dla46_c.safetensors"))
    del state["level3.tree1.tree1.bn1.running_var"]
    save_file(state, str(tmp_path / "gap.safetensors"))
    with pytest.raises(WeightsError, match="level3.tree1.tree1.bn1.moving_variance"):
        create_model("dla46_c", features_only=True, checkpoint_path=str(tmp_path / "gap.safetensors"))


def test_out_indices_select_and_truncate(timm_dla):
    ms.set_seed(0)
    full = create_model("dla46_c", features_only=True)
    part = create_model("dla46_c", features_only=True, out_indices=[3, 1])
    ms.load_param_into_net(part, full.parameters_dict())
    assert [f["module"] for f in part.feature_info] == ["level1", "level3"]
    assert part.dropped_modules[:2] == ["level4", "level5"]  # not built into the graph: no unused weights
    all_maps, some = _run(full, timm_dla["input"]), _run(part, timm_dla["input"])
    _assert_maps_close(some, [all_maps[1].asnumpy(), all_maps[3].asnumpy()], "subset")
    with pytest.raises(ValueError, match=r"0\.\.5 of feature_info \(0=level0"):
        create_model("dla46_c", features_only=True, out_indices=[6])


# one model per structure (basic / bottleneck / grouped / residual-root DLA, PeleeNet, ResNet); the other
# DLA variants differ only in the channel list their feature_info is built from
@pytest.mark.parametrize("name", ["dla34", "dla46_c", "dla46x_c", "dla60", "dla102", "peleenet",
                                  "multigrain_resnet50"])
def test_model_maps_match_feature_info(name):
    """64 px: one map per feature_info entry with its channels and stride; the last map is the
    classifier's forward_features (the children run in order really are the forward pass)."""
    ms.set_seed(0)
    classifier = create_model(name)
    net = create_model(name, features_only=True)
    not_loaded, _ = ms.load_param_into_net(net, classifier.parameters_dict())
    assert not not_loaded
    x = np.random.RandomState(0).randn(1, 3, 64, 64).astype(np.float32)
    maps = _run(net, x)
    assert len(maps) == len(classifier.feature_info) == len(net.feature_info)
    for feature_map, info in zip(maps, net.feature_info):
        assert feature_map.shape == (1, info["num_chs"], 64 // info["reduction"], 64 // info["reduction"])
    classifier.set_train(False)
    np.testing.assert_array_equal(maps[-1].asnumpy(), classifier.forward_features(ms.Tensor(x)).asnumpy())


@pytest.mark.usefixtures("graph_mode")
@pytest.mark.parametrize("name", FAMILIES)
def test_graph_mode_gradients_reach_every_parameter(name):
    net = create_model(name, features_only=True)
    net.set_train(True)

    class MapsLoss(nn.Cell):
        def __init__(self, backbone):
            super().__init__(auto_prefix=False)
            self.backbone = backbone

        def construct(self, x):
            loss = 0.0
            for feature_map in self.backbone(x):
                loss = loss + ops.mean(feature_map * feature_map)
            return loss

    x = ms.Tensor(np.random.RandomState(0).randn(2, 3, 64, 64).astype(np.float32))
    params = net.trainable_params()
    grads = ops.GradOperation(get_by_list=True)(MapsLoss(net), params)(x)
    assert len(grads) == len(params)
    zero = [p.name for p, g in zip(params, grads) if not np.abs(g.asnumpy()).sum() > 0]
    assert not zero, f"no gradient: {zero[:5]}"


@pytest.mark.usefixtures("graph_mode")
@pytest.mark.parametrize("name", FAMILIES)
def test_mindir_and_onnx_exports_give_one_output_per_map(name, tmp_path):
    import onnxruntime as ort
    net = create_model(name, features_only=True, out_indices=[1, 2, 3])
    x = np.random.RandomState(1).randn(1, 3, 64, 64).astype(np.float32)
    refs = [m.asnumpy() for m in _run(net, x)]
    for fmt in ("MINDIR", "ONNX"):
        ms.export(net, ms.Tensor(x), file_name=str(tmp_path / name), file_format=fmt)
    _assert_maps_close(nn.GraphCell(ms.load(str(tmp_path / f"{name}.mindir")))(ms.Tensor(x)), refs, "MINDIR")
    session = ort.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    _assert_maps_close(session.run(None, {session.get_inputs()[0].name: x}), refs, "ONNX")


def test_export_script_features_head(fixtures_dir, timm_dla, tmp_path):
    """``export.py --export_head features --out_indices 1,2,3,4,5`` from a classification .ckpt of
    another class count: the ONNX has one output per map, equal to the in-process backbone's, which
    equals timm's (MINDIR: the in-process export test)."""
    import onnxruntime as ort
    ckpt = tmp_path / "dla46_c.ckpt"
    ms.save_checkpoint(create_model("dla46_c", checkpoint_path=str(fixtures_dir / "timm_dla46_c.safetensors")),
                       str(ckpt))
    x = timm_dla["input"]
    refs = [timm_dla[f"f{i}"] for i in range(5)]
    args = ["--config_path", "config/dla_demo_config.yaml", "--ckpt_file", ckpt, "--export_head", "features",
            "--out_indices", "1,2,3,4,5", "--export_batch_size", "2"]  # demo config: 10 classes, head dropped
    proc = run_script("dla/export.py", *args, "--file_format", "ONNX", "--file_name", tmp_path / "bb",
                      "--image_size", "96", check=True)
    assert "backbone, maps [1, 2, 3, 4, 5]" in proc.stdout
    # exported at 96x96; the fixture input is 96x128: compare on its left 96 columns against our own run
    x_sq = x[:, :, :, :96]
    net = create_model("dla46_c", features_only=True, out_indices=[1, 2, 3, 4, 5], checkpoint_path=str(ckpt))
    refs_sq = [m.asnumpy() for m in _run(net, x_sq)]
    _assert_maps_close(_run(net, x), refs, "in-process")
    session = ort.InferenceSession(str(tmp_path / "bb.onnx"), providers=["CPUExecutionProvider"])
    _assert_maps_close(session.run(None, {session.get_inputs()[0].name: x_sq}), refs_sq, "ONNX")


def test_export_head_unknown_for_the_family_is_one_line(tmp_path):
    ckpt = tmp_path / "dla46_c.ckpt"
    ms.save_checkpoint(create_model("dla46_c", num_classes=10), str(ckpt))
    proc = run_script("dla/export.py", "--config_path", "config/dla_demo_config.yaml", "--ckpt_file", ckpt,
                      "--export_head", "embedding", "--file_name", tmp_path / "x", check=False)
    assert proc.returncode == 2 and "export_head" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("x*"))


def test_resnet50_maps_equal_timm_features_only(tmp_path):
    """timm ``resnet50`` (features_only: act1, layer1-4) with random weights and BatchNorm statistics,
    converted through a safetensors file; needs torch and timm (not installed in CI: skipped)."""
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    from safetensors.numpy import save_file
    torch.manual_seed(0)
    classifier = timm.create_model("resnet50", pretrained=False, num_classes=10)
    for module in classifier.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            with torch.no_grad():
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    state = {k: v.detach().numpy().copy() for k, v in classifier.state_dict().items()}
    save_file(state, str(tmp_path / "resnet50.safetensors"))
    try:
        from timm.models._features import FeatureListNet
    except ImportError:  # timm < 0.9
        from timm.models.features import FeatureListNet
    reference = FeatureListNet(classifier.eval(), out_indices=(0, 1, 2, 3, 4))  # what features_only builds
    reference.eval()
    x = np.random.RandomState(0).randn(2, 3, 96, 128).astype(np.float32)
    with torch.no_grad():
        refs = [m.numpy() for m in reference(torch.from_numpy(x))]
    net = create_model("multigrain_resnet50", features_only=True,
                       checkpoint_path=str(tmp_path / "resnet50.safetensors"))
    assert [f["num_chs"] for f in net.feature_info] == reference.feature_info.channels()
    assert [f["reduction"] for f in net.feature_info] == reference.feature_info.reduction()
    _assert_maps_close(_run(net, x), refs, "resnet50")


@pytest.mark.usefixtures("pynative_mode")
def test_documented_backbone_example_runs(capsys):
    """The "Use as a backbone" example (docs/backbone.md, linked from the README), run as written, in
    the mode a reader's fresh process has (PYNATIVE, MindSpore's default; the example sets none).
    Another test may have left GRAPH mode set, in which MindSpore cannot find the source of a class
    defined by exec."""
    page = (ROOT / "docs" / "backbone.md").read_text(encoding="utf-8")
    section = page[page.index("# Use as a backbone"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "docs/backbone.md", "exec"), {"__name__": "readme_example"})  # noqa: S102
    assert "heatmaps (1, 3, 56, 56)" in capsys.readouterr().out
