"""Finetune the digits from the PaddleClas dla46_c .pdparams (1000 classes) straight into 10 classes."""
import ast

import pytest

from conftest import run_script


@pytest.mark.slow
def test_finetune_from_pdparams_trains(demo_data, fixtures_dir, tmp_path):
    proc = run_script("dla/train.py", "--config_path", "config/dla_demo_config.yaml", "--data_path", demo_data,
                      "--image_size", "32", "--epoch_size", "2", "--eval_interval", "2", "--lr", "0.05",
                      "--pretrained", fixtures_dir / "paddleclas_dla46_c.pdparams", "--output_dir", tmp_path,
                      "--keep_checkpoint_max", "1", timeout=1800)
    log = proc.stdout + proc.stderr
    assert "fc.weight" in log and "re-initialised" in log  # the head was skipped, and the log says so
    result = run_script("dla/eval.py", "--config_path", "config/dla_demo_config.yaml", "--data_path", demo_data,
                        "--image_size", "32", "--ckpt_file", tmp_path / "ckpt" / "best.ckpt")
    line = next(l for l in result.stdout.splitlines() if l.startswith("result: "))
    top1 = ast.literal_eval(line[len("result: "):].split(" ckpt= ")[0])["top_1_accuracy"]
    assert top1 > 0.5  # 10 classes: chance is 0.1
