"""Eval/export/predict entry points: one-line errors, MINDIR and ONNX export, predict output."""
import ast

import numpy as np
import pytest
import mindspore as ms

from common import create_model
from conftest import run_script


@pytest.fixture(scope="module")
def ckpt_10_classes(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "dla46_c_10.ckpt"
    ms.save_checkpoint(create_model("dla46_c", num_classes=10), str(path))
    return path


def args(demo_data, *extra):
    return ["--config_path", "config/dla_demo_config.yaml", "--data_path", demo_data, "--image_size", "32",
            "--num_parallel_workers", "1", *extra]


def one_error_line(proc):
    lines = [l for l in proc.stderr.splitlines() if l.strip() and not l.startswith("[WARNING]")]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1, lines
    return lines[0]


def test_eval_of_a_checkpoint_for_another_class_count(demo_data, ckpt_10_classes):
    proc = run_script("dla/eval.py", *args(demo_data, "--ckpt_file", ckpt_10_classes, "--num_classes", "5"),
                      check=False)
    line = one_error_line(proc)
    assert "made for 10 classes but this model has 5" in line


def test_eval_prints_the_modelzoo_result_line(demo_data, ckpt_10_classes):
    proc = run_script("dla/eval.py", *args(demo_data, "--ckpt_file", ckpt_10_classes))
    line = next(l for l in proc.stdout.splitlines() if l.startswith("result: "))
    result, ckpt = line[len("result: "):].split(" ckpt= ")
    metrics = ast.literal_eval(result)
    assert set(metrics) == {"top_1_accuracy", "top_5_accuracy"}
    assert 0 <= metrics["top_1_accuracy"] <= metrics["top_5_accuracy"] <= 1
    assert ckpt == str(ckpt_10_classes)


def test_eval_with_a_missing_dataset(tmp_path, ckpt_10_classes):
    line = one_error_line(run_script("dla/eval.py", *args(tmp_path / "none", "--ckpt_file", ckpt_10_classes),
                                     check=False))
    assert "dataset folder not found" in line


def test_air_export_off_ascend_is_refused(demo_data, ckpt_10_classes, tmp_path):
    proc = run_script("dla/export.py", *args(demo_data, "--ckpt_file", ckpt_10_classes, "--file_format", "AIR",
                                             "--file_name", tmp_path / "m"), check=False)
    assert "AIR export needs an Ascend device" in one_error_line(proc)


def test_onnx_export_matches_the_checkpoint(demo_data, ckpt_10_classes, tmp_path):
    import onnxruntime as ort
    run_script("dla/export.py", *args(demo_data, "--ckpt_file", ckpt_10_classes, "--file_format", "ONNX",
                                      "--file_name", tmp_path / "m", "--export_batch_size", "2"))
    x = np.random.RandomState(0).randn(2, 3, 32, 32).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {session.get_inputs()[0].name: x})[0]
    net = create_model("dla46_c", num_classes=10, checkpoint_path=str(ckpt_10_classes))
    net.set_train(False)
    ref = net(ms.Tensor(x)).asnumpy()
    assert np.abs(onnx_out - ref).max() <= 1e-4 * max(np.abs(ref).max(), 1.0)


def test_predict_output_layout_and_label_names(demo_data, ckpt_10_classes):
    folder = demo_data / "val" / "7"
    proc = run_script("dla/predict.py", *args(demo_data, "--ckpt_file", ckpt_10_classes, "--predict_path", folder))
    results = [ast.literal_eval(l) for l in proc.stdout.splitlines() if l.startswith("{'class_ids'")]
    assert len(results) == len(list(folder.glob("*.png")))
    first = results[0]
    assert set(first) == {"class_ids", "scores", "file_name", "label_names"}
    assert len(first["class_ids"]) == 5 and first["scores"] == sorted(first["scores"], reverse=True)
    assert first["label_names"] == [str(c) for c in first["class_ids"]]  # folder names of the digits
