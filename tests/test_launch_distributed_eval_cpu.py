"""Data parallel with 2 real msrun CPU workers: sharded evaluation, mid-epoch checkpoints, resume.

One 2-worker training run (dla46_c, 32 px, 128 training images, batch 16: 4 steps an epoch per
rank, 2 epochs, eval every epoch, a checkpoint every 3 steps, deterministic) is the source for:
- eval.py under msrun (each rank a shard of 59 validation images, an odd count, so a padded shard
  would count an image twice) prints the top-1 of one-process eval.py of the same file, and so does
  the eval during training for the checkpoint of its epoch;
- a 2-worker run resumed from the step-3 checkpoint (mid-epoch 1) trains the rest of epoch 1 and
  epoch 2 and ends with the uninterrupted run's weights (BatchNorm running statistics aside: the
  checkpoint holds rank 0's, and they do not enter the gradients);
- one process resumed from the 2-worker epoch-1 checkpoint (4 steps an epoch there, 8 here)
  continues the lr schedule at epoch 2, not at step 4 of its own 8-step epochs.
"""
import ast
import os
import re
import socket
import subprocess

import numpy as np
import pytest

from conftest import find_msrun, msrun_env, run_script

pytestmark = pytest.mark.alone  # msrun's CPU collectives time out when another test crowds the CPU

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKERS, BATCH, TRAIN_IMAGES, STEPS = 2, 16, 128, 4
VAL_IMAGES = 59  # odd: 30 + 29 per rank; every run here evaluates them (the split's 359 add time, not checks)
QUIET = {"GLOG_v": "3"}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def msrun(entry, job, *args):
    """``msrun`` with WORKERS local workers on ``entry`` (under dla/); returns (process, worker logs)."""
    job.mkdir(parents=True, exist_ok=True)
    cmd = [find_msrun(), "--worker_num", str(WORKERS), "--local_worker_num", str(WORKERS), "--master_port",
           str(free_port()), "--log_dir", str(job / "logs"), "--join=True", os.path.join(ROOT, "dla", entry),
           "--run_distribute", "True", *map(str, args)]
    proc = subprocess.run(cmd, cwd=job, env=msrun_env(**QUIET), capture_output=True, text=True, timeout=900)
    logs = [(job / "logs" / f"worker_{r}.log").read_text(errors="replace") for r in range(WORKERS)]
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:] + logs[0][-3000:] + logs[1][-3000:]
    return proc, logs


def top1(text):
    line = next(l for l in text.splitlines() if l.startswith("result: "))
    return ast.literal_eval(line[len("result: "):].split(" ckpt= ")[0])["top_1_accuracy"]


@pytest.fixture(scope="module")
def setup(demo_data, tmp_path_factory):
    base = tmp_path_factory.mktemp("dp")
    lines = (demo_data / "train_list.txt").read_text().splitlines()
    (base / "train.txt").write_text("\n".join(lines[:TRAIN_IMAGES]) + "\n")
    (base / "val.txt").write_text("\n".join((demo_data / "val_list.txt").read_text().splitlines()[:VAL_IMAGES]) + "\n")
    common = ["--config_path", os.path.join(ROOT, "config", "dla_demo_config.yaml"), "--data_path", demo_data,
              "--cls_label_path_train", base / "train.txt", "--cls_label_path_val", base / "val.txt",
              "--image_size", 32, "--batch_size", BATCH, "--num_parallel_workers", 1, "--mode", "PYNATIVE"]
    train = [*common, "--epoch_size", 2, "--deterministic", True, "--eval_interval", 1, "--log_interval", 1,
             "--save_checkpoint_steps", 3, "--keep_checkpoint_max", 10]
    _, logs = msrun("train.py", base / "full", *train, "--output_dir", base / "full" / "out")
    return {"base": base, "common": common, "train": train, "logs": logs, "ckpt": base / "full" / "out" / "ckpt_0"}


def eval_one_process(setup, ckpt):
    """One-process eval.py top-1 of ``ckpt`` (run once per file for the module)."""
    cache = setup.setdefault("single", {})
    if ckpt not in cache:
        cache[ckpt] = top1(run_script("dla/eval.py", *setup["common"], "--ckpt_file", ckpt, env=QUIET).stdout)
    return cache[ckpt]


@pytest.mark.slow
def test_sharded_eval_equals_one_process_eval(setup):
    ckpt = setup["ckpt"] / f"dla46_c-2_{STEPS}.ckpt"
    _, logs = msrun("eval.py", setup["base"] / "eval", *setup["common"], "--ckpt_file", ckpt)
    assert "evaluated 30 of 59 images" in logs[0] and "evaluated 29 of 59 images" in logs[1]
    single = eval_one_process(setup, ckpt)
    # exact: a padded shard (360 images) or ranks with different weights would show
    assert top1(logs[0]) == top1(logs[1]) == single


@pytest.mark.slow
def test_eval_during_training_equals_one_process_eval_of_the_epoch_checkpoint(setup):
    shown = re.findall(r"epoch: 2 eval: top_1_accuracy: ([0-9.]+)", setup["logs"][0])
    assert shown, setup["logs"][0][-2000:]
    assert float(shown[0]) == pytest.approx(eval_one_process(setup, setup["ckpt"] / f"dla46_c-2_{STEPS}.ckpt"),
                                            abs=5e-5)
    assert "global batch 32 (16/device x 2 devices)" in setup["logs"][0]


@pytest.mark.slow
def test_mid_epoch_checkpoint_resumes_where_it_was_saved(setup):
    import mindspore as ms
    from common import create_model

    assert sorted(p.name for p in setup["ckpt"].glob("dla46_c-*.ckpt")) == [
        "dla46_c-1_3.ckpt", "dla46_c-1_4.ckpt", "dla46_c-2_2.ckpt", "dla46_c-2_4.ckpt"]
    out = setup["base"] / "resumed" / "out"
    _, logs = msrun("train.py", setup["base"] / "resumed", *setup["train"], "--output_dir", out,
                    "--resume", setup["ckpt"] / "dla46_c-1_3.ckpt")
    assert "epochs 1..2 (epoch 1 from step 4)" in logs[0]
    steps = re.findall(r"epoch: (\d) step: (\d)/4", logs[0])
    assert steps == [("1", "4"), ("2", "1"), ("2", "2"), ("2", "3"), ("2", "4")]
    want = ms.load_checkpoint(str(setup["ckpt"] / f"dla46_c-2_{STEPS}.ckpt"))
    got = ms.load_checkpoint(str(out / "ckpt_0" / f"dla46_c-2_{STEPS}.ckpt"))
    trainable = [p.name for p in create_model("dla46_c", num_classes=10).trainable_params()]
    for name in trainable + ["global_step"]:
        np.testing.assert_allclose(got[name].asnumpy(), want[name].asnumpy(), rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.slow
def test_one_process_resume_of_a_two_device_checkpoint_continues_at_the_next_epoch(setup):
    """Epoch 2 starts the cosine at its peak (warmup_epochs 1): lr 0.1. Indexed by the checkpoint's
    optimizer step (4) in 8-step epochs it would be mid-warmup (0.05). Also: the start line warns
    when the global batch is not the recipe's reference."""
    import mindspore as ms
    proc = run_script("dla/train.py", *setup["train"], "--eval_during_train", False, "--reference_batch_size", 32,
                      "--output_dir", setup["base"] / "single",
                      "--resume", setup["ckpt"] / "dla46_c-1_4.ckpt", env=QUIET)
    assert ("the checkpoint's epochs had 4 steps on 2 device(s), this run's have 8 on 1: the lr schedule "
            "continues at epoch 2 (optimizer step 8)") in proc.stdout
    # the 2-device run's global batch was 32; this one's is 16, and the lr is used as written
    assert ("WARNING: global batch 16 (16/device x 1 device) is not the reference_batch_size 32 this recipe's "
            "lr 0.1 was written for") in proc.stdout
    first = next(l for l in proc.stdout.splitlines() if l.startswith("epoch: 2 step: 1/8"))
    assert "lr: 0.100000" in first
    final = ms.load_checkpoint(str(setup["base"] / "single" / "ckpt" / "dla46_c-2_8.ckpt"))
    assert int(final["global_step"].asnumpy()[0]) == 16 and int(final["device_num"].asnumpy()) == 1
