"""End to end on a slice of the digits data: train with the mix loss (repeated augmentation),
eval with retrieval metrics, export the embedding head; the batch-size check as the user sees it."""
import ast
import re

import numpy as np
import pytest

import common  # noqa: F401
from conftest import run_script

CONFIG = "config/multigrain_demo_config.yaml"


def _slice(demo_data, tmp_path, name, source, count):
    path = tmp_path / name
    lines = (demo_data / source).read_text().splitlines()[:count]
    path.write_text("\n".join(lines) + "\n")
    return path


def _dict_after(prefix, text):
    line = next(line for line in text.splitlines() if line.startswith(prefix))
    return ast.literal_eval(re.match(rf"{prefix}\s*(\{{.*?\}})", line).group(1)), line


@pytest.mark.slow
def test_train_eval_retrieval_export(demo_data, tmp_path):
    train_list = _slice(demo_data, tmp_path, "train.txt", "train_list.txt", 60)
    val_list = _slice(demo_data, tmp_path, "val.txt", "val_list.txt", 30)
    common_args = ["--config_path", CONFIG, "--data_path", demo_data, "--cls_label_path_val", val_list]
    out = tmp_path / "out"
    proc = run_script("multigrain/train.py", *common_args, "--cls_label_path_train", train_list,
                      "--output_dir", out, "--batch_size", 30, "--epoch_size", 1, "--eval_during_train", "False")
    assert re.search(r"epoch: 1 step: 6/6, loss: \d+\.\d+", proc.stdout)   # 60 images x 3 copies / 30
    ckpt = out / "ckpt" / "multigrain_resnet50-1_6.ckpt"
    assert ckpt.is_file()

    proc = run_script("multigrain/eval.py", *common_args, "--ckpt_file", ckpt, "--retrieval", "True",
                      "--query_list", val_list, "--gallery_list", train_list, "--eval_gem_p", 4)
    # p is set before the classification eval (whose top-1 it changes), not only for retrieval
    assert proc.stdout.index("GeM p for evaluation: 4") < proc.stdout.index("result:")
    result, line = _dict_after("result:", proc.stdout)
    assert line.endswith(f"ckpt= {ckpt}")
    assert set(result) == {"top_1_accuracy", "top_5_accuracy"}
    retrieval, line = _dict_after("retrieval:", proc.stdout)
    assert set(retrieval) == {"mAP", "recall@1", "recall@5"} and "queries= 30 gallery= 60" in line
    assert 0.0 < retrieval["mAP"] <= 1.0 and retrieval["recall@1"] <= retrieval["recall@5"]

    run_script("multigrain/export.py", "--config_path", CONFIG, "--ckpt_file", ckpt, "--export_head", "embedding",
               "--file_name", tmp_path / "embedding", "--eval_gem_p", 4)
    import mindspore as ms
    graph = ms.nn.GraphCell(ms.load(str(tmp_path / "embedding.mindir")))
    emb = graph(ms.Tensor(np.random.RandomState(0).rand(1, 3, 32, 32).astype(np.float32))).asnumpy()
    assert emb.shape == (1, 2048)
    np.testing.assert_allclose(np.linalg.norm(emb), 1.0, atol=1e-4)


def test_batch_not_a_multiple_of_three_is_refused(demo_data, tmp_path):
    proc = run_script("multigrain/train.py", "--config_path", CONFIG, "--data_path", demo_data,
                      "--output_dir", tmp_path, "--batch_size", 32, check=False, timeout=300)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip() and "WARNING" not in line]
    assert proc.returncode == 2
    assert lines == ["error: config error: batch_size must be a multiple of repeat_aug=3 (each image appears 3 "
                     "times per batch), got batch_size=32; use 30 or 33"]
