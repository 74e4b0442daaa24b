"""The issue's must-show: PeleeNet with the demo config reaches >= 95% top-1 on the digits val split.

Trains from the list files (the folder variant runs in test_chain_peleenet.py), then scores the
kept best.ckpt with eval.py as the README does."""
import ast
import re

import pytest

from conftest import run_script

CONFIG = "config/peleenet_demo_config.yaml"


@pytest.mark.slow
def test_demo_config_reaches_95_percent(demo_data, tmp_path):
    lists = ["--config_path", CONFIG, "--data_path", demo_data,
             "--cls_label_path_train", "train_list.txt", "--cls_label_path_val", "val_list.txt"]
    run_script("peleenet/train.py", *lists, "--output_dir", tmp_path, timeout=1800)
    ev = run_script("peleenet/eval.py", *lists, "--ckpt_file", tmp_path / "ckpt" / "best.ckpt")
    metrics = ast.literal_eval(re.search(r"^result: (\{.*\}) ckpt= ", ev.stdout, re.M).group(1))
    print(f"peleenet demo: {metrics}")
    assert metrics["top_1_accuracy"] >= 0.95, ev.stdout
