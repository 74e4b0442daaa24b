"""Exports for any batch (``export_batch_size: 0``) and with BatchNorm folded (``fold_bn``), per family.

Each family's smallest model at 32 px with random weights AND random BatchNorm statistics (a fold of
the initial mean 0 / variance 1 would be nearly the identity), through the export entry point in-process:

- the dynamic-batch MINDIR and ONNX files give the fixed-batch (8) ONNX export's outputs at batch 1, 3
  and 8 (ONNX Runtime; OpenCV DNN too where cv2 is installed, skipped otherwise);
- the folded export (the default) has no BatchNorm left and equals the unfolded network run by MindSpore
  within 1e-5 relative; ``--fold_bn False`` keeps the BatchNorms;
- the symbolic-batch rewrite on hand-made graphs: a zero-padding Concat becomes a Pad equal to numpy's
  ``np.pad``, a Reshape's batch becomes 0, and a graph it cannot rewrite is refused in one line.
"""
import collections

import numpy as np
import pytest

FAMILIES = {"dla46_c": "config/dla_demo_config.yaml", "peleenet": "config/peleenet_demo_config.yaml",
            "multigrain_resnet50": "config/multigrain_demo_config.yaml"}
SIZE, FIXED = 32, 8
RTOL = 1e-5


def _rel(got, ref):
    return float(np.abs(np.asarray(got) - ref).max()) / max(float(np.abs(ref).max()), 1e-12)


def _checkpoint(model, path):
    """A checkpoint whose BatchNorms hold statistics far from the identity."""
    import mindspore as ms
    from common import create_model
    net = create_model(model, num_classes=10)
    rng = np.random.default_rng(3)
    for param in net.get_parameters():
        low, high = (0.3, 2.0) if param.name.endswith(("moving_variance", "gamma")) else (-0.3, 0.3)
        if param.name.endswith(("moving_variance", "gamma", "moving_mean", "beta")):
            param.set_data(ms.Tensor(rng.uniform(low, high, param.shape).astype(np.float32)))
    ms.save_checkpoint(net, str(path))
    return net


def _export(model, ckpt, out, fmt, batch, *extra):
    from common.engine import export_main
    return export_main(["--config_path", FAMILIES[model], "--ckpt_file", str(ckpt), "--image_size", str(SIZE),
                        "--file_format", fmt, "--export_batch_size", str(batch), "--file_name", str(out), *extra])


def _ort(path, x):
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _mindir(path, x):
    import mindspore as ms
    return ms.nn.GraphCell(ms.load(str(path)))(ms.Tensor(x)).asnumpy()


def _op_types(path):
    import onnx
    return collections.Counter(node.op_type for node in onnx.load(str(path)).graph.node)


@pytest.mark.slow
@pytest.mark.parametrize("model", list(FAMILIES))
def test_dynamic_batch_exports_equal_the_fixed_export_and_folding_keeps_outputs(model, tmp_path):
    import mindspore as ms
    net = _checkpoint(model, tmp_path / "m.ckpt")
    x = np.random.default_rng(0).standard_normal((FIXED, 3, SIZE, SIZE)).astype(np.float32)
    fixed = _export(model, tmp_path / "m.ckpt", tmp_path / "fixed", "ONNX", FIXED)  # first: it sets the device up
    net.set_train(False)
    unfolded = net(ms.Tensor(x)).asnumpy()  # the network as trained, BatchNorms and all (PyNative)
    assert _op_types(fixed)["BatchNormalization"] == 0 and _op_types(fixed)["Conv"] > 0
    reference = _ort(fixed, x)
    assert _rel(reference, unfolded) <= RTOL, "folded export differs from the unfolded network"

    any_onnx = _export(model, tmp_path / "m.ckpt", tmp_path / "any", "ONNX", 0)
    any_mindir = _export(model, tmp_path / "m.ckpt", tmp_path / "any", "MINDIR", 0)
    cv2 = _cv2()
    if cv2 is not None:  # the fixed-batch file too: it ran in OpenCV DNN before folding came in
        assert _rel(_opencv(cv2, fixed, x), reference) <= RTOL, "OpenCV, fixed batch"
    from common.config import parse_args
    from common.predict import Predictor
    for path in (any_onnx, any_mindir):  # what predict and eval run the file with: any batch, no padding
        predictor = Predictor(parse_args(["--ckpt_file", path, "--image_size", str(SIZE)]))
        assert predictor.fixed_batch is None
        assert _rel(predictor(x[:5]), reference[:5]) <= RTOL, path
    for batch in (1, 3, 8):
        assert _rel(_ort(any_onnx, x[:batch]), reference[:batch]) <= RTOL, ("ONNX", batch)
        assert _rel(_mindir(any_mindir, x[:batch]), reference[:batch]) <= RTOL, ("MINDIR", batch)
        if cv2 is not None:
            assert _rel(_opencv(cv2, any_onnx, x[:batch]), reference[:batch]) <= RTOL, ("OpenCV", batch)


def _cv2():
    try:
        import cv2  # optional: not a dependency of ours, checked where it is installed
    except ImportError:
        return None
    return cv2


def _opencv(cv2, path, x):
    net = cv2.dnn.readNetFromONNX(str(path))
    net.setInput(x)
    return net.forward()


def test_opencv_dnn_runs_the_dynamic_onnx_where_installed():
    if _cv2() is None:
        pytest.skip("cv2 (OpenCV) not installed: the OpenCV DNN check runs where it is")


@pytest.mark.slow
def test_fold_bn_false_keeps_the_batchnorms(tmp_path):
    _checkpoint("dla46_c", tmp_path / "m.ckpt")
    path = _export("dla46_c", tmp_path / "m.ckpt", tmp_path / "u", "ONNX", 2, "--fold_bn", "False")
    assert _op_types(path)["BatchNormalization"] == 48


# --------------------------------------------------------------------------- the rewrite on hand-made graphs
def _model(nodes, inits, out_shape, batch=7):
    from onnx import TensorProto, helper, numpy_helper
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 2, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])


def _run_model(model, x):
    import onnxruntime as ort
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_zero_padding_concat_becomes_pad_and_reshape_takes_any_batch():
    pytest.importorskip("onnx")
    from onnx import helper
    from common.onnx_batch import make_batch_symbolic
    rows = np.zeros((7, 2, 1, 3), np.float32)
    cols = np.zeros((7, 2, 5, 2), np.float32)
    nodes = [helper.make_node("Concat", ["rows", "x", "rows"], ["p"], axis=2),
             helper.make_node("Concat", ["p", "cols"], ["q"], axis=3),
             helper.make_node("Reshape", ["q", "shape"], ["y"])]
    model = _model(nodes, {"rows": rows, "cols": cols, "shape": np.array([7, -1], np.int64)}, [7, 50])
    fixed = type(model)()
    fixed.CopyFrom(model)
    make_batch_symbolic(fixed, symbolic=False)  # a fixed-batch export: the Pads alone, batch 7 kept
    assert [n.op_type for n in fixed.graph.node] == ["Pad", "Pad", "Reshape"]
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 7
    x7 = np.random.default_rng(1).standard_normal((7, 2, 3, 3)).astype(np.float32)
    np.testing.assert_array_equal(_run_model(fixed, x7), np.pad(x7, ((0, 0), (0, 0), (1, 1), (0, 2))).reshape(7, -1))
    make_batch_symbolic(model)
    assert [n.op_type for n in model.graph.node] == ["Pad", "Pad", "Reshape"]
    x = np.random.default_rng(0).standard_normal((3, 2, 3, 3)).astype(np.float32)
    expected = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 2))).reshape(3, -1)
    np.testing.assert_array_equal(_run_model(model, x), expected)


def test_a_batch_sized_constant_it_cannot_rewrite_is_refused():
    pytest.importorskip("onnx")
    from onnx import helper
    from common.onnx_batch import BatchNotSymbolic, make_batch_symbolic
    bias = np.random.default_rng(0).standard_normal((7, 2, 3, 3)).astype(np.float32)  # not one value: not a pad
    nodes = [helper.make_node("Concat", ["x", "bias"], ["y"], axis=1)]
    with pytest.raises(BatchNotSymbolic, match="Concat node 'y' concatenates a constant of the traced batch"):
        make_batch_symbolic(_model(nodes, {"bias": bias}, [7, 4, 3, 3]))


def test_export_that_cannot_take_any_batch_is_one_line(tmp_path, monkeypatch, capsys):
    """Through the entry point, with a rewrite that refuses (no graph of ours does): one line naming the
    node and the way out, exit 2, no file left."""
    import common.export
    from common.onnx_batch import BatchNotSymbolic

    def refuse(path, batch, symbolic):
        raise BatchNotSymbolic("Expand node 'n1' builds a tensor of the traced batch's size from a constant shape")
    monkeypatch.setattr(common.export, "symbolic_batch_file", refuse)
    _checkpoint("dla46_c", tmp_path / "m.ckpt")
    with pytest.raises(SystemExit) as stop:
        _export("dla46_c", tmp_path / "m.ckpt", tmp_path / "f", "ONNX", 0, "--fold_bn", "False")
    lines = [l for l in capsys.readouterr().err.splitlines() if l.strip() and not l.startswith("[WARNING]")]
    assert stop.value.code == 2 and len(lines) == 1, lines
    assert "dla46_c cannot be exported to ONNX for any batch (Expand node 'n1'" in lines[0]
    assert "pass a fixed --export_batch_size N, or export MINDIR" in lines[0]
    assert not list(tmp_path.glob("f*")) and not list(tmp_path.glob(".*onnx*"))


# --------------------------------------------------------------------------- backbone exports are not classifiers
def test_backbone_export_given_to_predict_or_eval_is_one_line(tmp_path, demo_data, capsys):
    from PIL import Image
    from common.engine import eval_main, predict_main
    _checkpoint("dla46_c", tmp_path / "m.ckpt")
    features = ("--export_head", "features", "--out_indices", "3,5", "--fold_bn", "False")
    onnx_file = _export("dla46_c", tmp_path / "m.ckpt", tmp_path / "bb", "ONNX", 2, *features)
    mindir_file = _export("dla46_c", tmp_path / "m.ckpt", tmp_path / "bb", "MINDIR", 0, *features)
    Image.new("RGB", (40, 40)).save(tmp_path / "x.png")
    capsys.readouterr()
    runs = [(predict_main, onnx_file, ["--predict_path", str(tmp_path / "x.png")], "2x64x4x4, 2x256x1x1"),
            (eval_main, mindir_file, ["--data_path", str(demo_data)], "Nx64x4x4, Nx256x1x1")]
    for main, path, args, maps in runs:
        with pytest.raises(SystemExit) as stop:
            main(["--config_path", FAMILIES["dla46_c"], "--ckpt_file", path, "--image_size", str(SIZE), *args])
        lines = [l for l in capsys.readouterr().err.splitlines() if l.strip() and not l.startswith("[WARNING]")]
        assert stop.value.code == 2 and len(lines) == 1, lines
        assert lines[0] == (f"error: {path} is a feature extractor (a backbone export with 2 outputs: {maps}), not a "
                            f"classifier: predict and eval need a file exported with --export_head classifier")


def test_a_conv_bn_pair_the_network_does_not_chain_is_refused_not_folded():
    """The fold pairs a Conv2d with the BatchNorm2d created right after it; a cell that applies that
    BatchNorm to something else (here: before the conv) must be refused by the output check."""
    import mindspore as ms
    from mindspore import nn
    from common.errors import UserError
    from common.fold import fold_checked

    class BnFirst(nn.Cell):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, pad_mode="pad", padding=1)
            self.bn = nn.BatchNorm2d(3)

        def construct(self, x):
            return self.conv(self.bn(x))

    cell = BnFirst()
    cell.bn.moving_mean.set_data(ms.Tensor(np.array([0.5, -0.5, 0.2], np.float32)))
    with pytest.raises(UserError, match=r"toy: folding BatchNorm into the convolutions changed the outputs by .* "
                                        r"export with --fold_bn False"):
        fold_checked(cell, 8, "toy")


def test_folding_trained_weights_stays_as_close_to_timm_as_the_unfolded_network(fixtures_dir):
    """timm's dla46_c weights and logits (PyTorch): folding moves our logits by float32 rounding only,
    the size of the MindSpore-PyTorch difference itself (measured: 1.2e-5 folded vs unfolded, 9.7e-6
    unfolded vs timm, 1.0e-5 folded vs timm)."""
    import mindspore as ms
    from common import create_model
    from common.fold import fold_batchnorms
    io = np.load(fixtures_dir / "timm_dla46_c_io.npz")
    x = ms.Tensor(io["input"].astype(np.float32))
    nets = [create_model("dla46_c", checkpoint_path=str(fixtures_dir / "timm_dla46_c.safetensors")) for _ in "ab"]
    for net in nets:
        net.set_train(False)
    assert fold_batchnorms(nets[1]) == 48
    unfolded, folded = (net(x).asnumpy() for net in nets)
    assert _rel(folded, unfolded) <= 3e-5
    assert _rel(folded, io["logits"]) <= 2 * _rel(unfolded, io["logits"]) <= 4e-5


def test_a_second_task_in_one_process_keeps_the_device_it_is_on():
    """MindSpore refuses set_device once a kernel ran, even for the device in use: an export after a forward
    pass in one process (a library caller, the suite's workers) must go on; another device is still refused."""
    import mindspore as ms
    from common.device import init_context
    from common.errors import ConfigError
    ms.ops.add(ms.Tensor(np.ones(2, np.float32)), 1).asnumpy()  # a kernel ran: the runtime is initialised
    assert init_context("CPU", mode="PYNATIVE") == (0, 1)
    with pytest.raises(ConfigError, match="device_target GPU is not available"):
        init_context("GPU", mode="PYNATIVE")
