"""TIPC-style chain for PeleeNet on the digits demo data, through the README's shell commands:
train (the session's demo run, conftest.peleenet_demo) -> eval -> export MINDIR -> predict with the
MINDIR and with the checkpoint."""
import ast
import os
import re

import pytest

from conftest import run_script

CONFIG = "config/peleenet_demo_config.yaml"
RESULT = re.compile(r"^result: (\{.*\}) ckpt= (\S.*)$", re.M)
BEST = re.compile(r"^epoch: (\d) eval: top_1_accuracy: ([\d.]+), .*best top_1_accuracy: ([\d.]+) \(epoch (\d)\)$",
                  re.M)


def _predictions(stdout):
    return [ast.literal_eval(line) for line in stdout.splitlines() if line.startswith("{'class_ids'")]


@pytest.mark.slow
def test_train_eval_export_predict_chain(demo_data, peleenet_demo, tmp_path):
    data, out = str(demo_data), tmp_path / "out"
    common_args = ["--config_path", CONFIG, "--data_path", data]

    best = peleenet_demo.best
    assert best.is_file(), peleenet_demo.stdout[-2000:]
    evals = BEST.findall(peleenet_demo.stdout)
    assert [int(e[0]) for e in evals] == list(range(1, 9)), peleenet_demo.stdout[-3000:]
    # best.ckpt is the epoch with the highest top-1 (the first of equals)
    top1s = [float(e[1]) for e in evals]
    best_epoch = top1s.index(max(top1s)) + 1
    assert (float(evals[-1][2]), int(evals[-1][3])) == (max(top1s), best_epoch)
    in_training = max(top1s)

    ev = run_script("peleenet/eval.py", *common_args, "--ckpt_file", best)
    metrics, ckpt = RESULT.search(ev.stdout).groups()
    metrics = ast.literal_eval(metrics)
    assert set(metrics) == {"top_1_accuracy", "top_5_accuracy"}
    assert 0.0 <= metrics["top_1_accuracy"] <= metrics["top_5_accuracy"] <= 1.0
    assert os.path.samefile(ckpt, best)
    # eval.py on the saved weights reproduces the evaluation done while training (4-digit print)
    assert metrics["top_1_accuracy"] == pytest.approx(in_training, abs=1e-4)

    run_script("peleenet/export.py", *common_args, "--ckpt_file", best, "--file_format", "MINDIR",
               "--file_name", out / "peleenet")
    mindir = out / "peleenet.mindir"
    assert mindir.is_file()

    images = demo_data / "val" / "3"
    expected_files = sorted(str(p) for p in images.glob("*.png"))
    labels = (demo_data / "labels.txt").read_text().split()
    by_model = {}
    for model in (mindir, best):
        pred = run_script("peleenet/predict.py", *common_args, "--ckpt_file", model, "--predict_path", images)
        results = _predictions(pred.stdout)
        assert sorted(r["file_name"] for r in results) == expected_files
        for r in results:
            assert set(r) == {"class_ids", "scores", "file_name", "label_names"}
            assert len(r["class_ids"]) == 5 == len(set(r["class_ids"]))
            assert all(0 <= c < 10 for c in r["class_ids"])
            assert r["scores"] == sorted(r["scores"], reverse=True) and 0 < sum(r["scores"]) <= 1.0001
            assert r["label_names"] == [labels[c] for c in r["class_ids"]]
        by_model[model.suffix] = results
    top1 = {suffix: [r["class_ids"][0] for r in rs] for suffix, rs in by_model.items()}
    assert top1[".mindir"] == top1[".ckpt"]
    for a, b in zip(by_model[".mindir"], by_model[".ckpt"]):
        assert a["scores"][0] == pytest.approx(b["scores"][0], abs=1e-3)
    # a trained net (>= 95% on val, test_peleenet_accuracy.py): the val folder of 3s is mostly called 3
    assert top1[".ckpt"].count(3) >= 0.8 * len(top1[".ckpt"]), top1[".ckpt"]
