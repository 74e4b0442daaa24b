"""eval.py on exported files: a MINDIR and an ONNX export, for batch 8 and for any batch (export_batch_size 0,
evaluated at the config's batch_size), score exactly the checkpoint's top-1 on the digits.

The checkpoint is the session's dla46_c finetuned on the 32 px digits (conftest.dla_finetuned, ~0.78
top-1: predictions decided, not chance). The export batch (8) does not divide the 359 val images, so
the last batch is padded: a pad counted as a prediction, or any preprocessing that differs from the
checkpoint's eval, changes the numbers."""
import pytest

from conftest import eval_result, run_script

pytestmark = pytest.mark.slow
EXPORT_BATCH = 8


def common_args(demo_data):
    return ["--config_path", "config/dla_demo_config.yaml", "--data_path", demo_data, "--image_size", "32",
            "--num_parallel_workers", "1"]


def evaluate(demo_data, model_file):
    metrics, path = eval_result(run_script("dla/eval.py", *common_args(demo_data), "--ckpt_file", model_file).stdout)
    assert path == str(model_file)
    return metrics


def test_exported_files_score_the_checkpoints_top1_exactly(demo_data, dla_finetuned, tmp_path):
    assert len(list((demo_data / "val").rglob("*.png"))) % EXPORT_BATCH != 0
    reference = dla_finetuned.metrics  # eval.py of the checkpoint
    assert reference["top_1_accuracy"] > 0.5  # trained: far from chance (0.1)
    for fmt, suffix in (("MINDIR", ".mindir"), ("ONNX", ".onnx")):
        for batch in (EXPORT_BATCH, 0):
            run_script("dla/export.py", *common_args(demo_data), "--ckpt_file", dla_finetuned.ckpt, "--file_format",
                       fmt, "--file_name", tmp_path / f"m{batch}", "--export_batch_size", str(batch))
            exported = evaluate(demo_data, tmp_path / f"m{batch}{suffix}")
            assert exported["top_1_accuracy"] == reference["top_1_accuracy"], (fmt, batch)
            assert exported["top_5_accuracy"] == reference["top_5_accuracy"], (fmt, batch)


def test_an_export_for_another_image_size_is_one_line(demo_data, dla_finetuned, tmp_path):
    run_script("dla/export.py", *common_args(demo_data), "--ckpt_file", dla_finetuned.ckpt, "--file_format", "ONNX",
               "--file_name", tmp_path / "m64", "--image_size", "64")
    proc = run_script("dla/eval.py", *common_args(demo_data), "--ckpt_file", tmp_path / "m64.onnx", check=False)
    lines = [l for l in proc.stderr.splitlines() if l.strip() and not l.startswith("[WARNING]")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "takes 64x64 images but image_size is 32: pass --image_size 64" in lines[0]
