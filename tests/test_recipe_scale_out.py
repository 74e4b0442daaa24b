"""Global batch, lr scaling and gradient accumulation (one process).

Accumulation is checked against what it means: A batches of B make the update of one batch of A*B
(on a network without BatchNorm, whose batch statistics would differ), and the lr schedule and
the optimizer's step advance once per update. The end-to-end runs use dla/train.py on 36 digits
(32 px, batch 4, 2 accumulation steps: 9 batches, so 4 optimizer steps an epoch and 1 batch left out).
"""
import math
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import yaml

import common  # noqa: F401  (CPU fast path first)
import mindspore as ms
import mindspore.dataset as ds
from mindspore import nn
from mindspore.amp import FixedLossScaleManager
from mindspore.train import Model

from common.accumulation import GradientAccumulation
from common.config import Config, DEFAULTS
from common.errors import ConfigError
from common.global_batch import lr_config
from conftest import ROOT, SHARED, run_script

QUIET = {"GLOG_v": "3"}
LRS = [0.1, 0.05, 0.02, 0.01]  # distinct per optimizer step: an lr advanced per batch would show


def _train(batch, accumulation, samples=32):
    rng = np.random.RandomState(0)
    images, labels = rng.randn(samples, 3, 8, 8).astype(np.float32), rng.randint(0, 4, samples).astype(np.int32)
    ms.set_seed(3)
    net = nn.SequentialCell([nn.Conv2d(3, 4, 3, has_bias=True), nn.ReLU(), nn.Flatten(), nn.Dense(256, 4)])
    optimizer = nn.Momentum(net.trainable_params(), ms.Tensor(LRS, ms.float32), 0.9, loss_scale=8.0)
    model = Model(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"), optimizer,
                  loss_scale_manager=FixedLossScaleManager(8.0, drop_overflow_update=False))
    if accumulation > 1:
        model.train_network.optimizer = GradientAccumulation(optimizer, accumulation)
    data = ds.NumpySlicesDataset((images, labels), ["image", "label"], shuffle=False).batch(batch)
    model.train(1, data, dataset_sink_mode=False)
    return {p.name: p.asnumpy() for p in net.trainable_params()}, int(optimizer.global_step.asnumpy()[0])


def test_two_batches_of_8_accumulated_equal_one_batch_of_16(graph_mode):
    whole, whole_steps = _train(16, 1)
    accumulated, accumulated_steps = _train(8, 2)
    assert whole_steps == accumulated_steps == 2  # 32 samples: 2 updates either way, lr 0.1 then 0.05
    for name in whole:
        np.testing.assert_allclose(accumulated[name], whole[name], rtol=1e-5, atol=1e-6, err_msg=name)
    per_batch, _ = _train(8, 1)  # the same batches without accumulation: another result
    assert max(np.abs(per_batch[k] - whole[k]).max() for k in whole) > 1e-3


def _cfg(**kw):
    return Config({**{k: v[0] for k, v in DEFAULTS.items()}, **kw})


def test_linear_scaling_scales_the_whole_schedule():
    cfg = _cfg(batch_size=64, lr=0.1, warmup_lr=0.01, min_lr=0.001, reference_batch_size=256, lr_scale="linear")
    scaled, warning = lr_config(cfg, 8)  # 512 = 2 x 256
    assert (scaled.lr, scaled.warmup_lr, scaled.min_lr) == pytest.approx((0.2, 0.02, 0.002)) and warning == ""
    assert cfg.lr == 0.1, "the config keeps the recipe's lr (config.yaml reproduces the run)"
    accumulated, _ = lr_config(_cfg(batch_size=64, gradient_accumulation_steps=4, reference_batch_size=256,
                                    lr_scale="linear"), 2)
    assert accumulated.lr == pytest.approx(0.2)


def test_another_global_batch_without_scaling_warns_in_one_line():
    same, warning = lr_config(_cfg(batch_size=64, reference_batch_size=256), 8)
    assert same.lr == 0.1
    assert warning.count("\n") == 0 and "global batch 512 (64/device x 8 devices)" in warning
    assert "reference_batch_size 256" in warning and "--lr_scale linear would make it 0.2" in warning
    assert lr_config(_cfg(batch_size=64, reference_batch_size=256), 4)[1] == ""
    assert lr_config(_cfg(batch_size=64), 8)[1] == "", "no reference stated: nothing to compare with"


@pytest.mark.parametrize("kw, needle", [
    (dict(lr_scale="linear"), "needs reference_batch_size"),
    (dict(lr_scale="sqrt", reference_batch_size=256), "lr_scale must be one of none, linear"),
    (dict(gradient_accumulation_steps=0), "gradient_accumulation_steps must be >= 1")])
def test_bad_settings_are_config_errors(kw, needle):
    with pytest.raises(ConfigError, match=needle):
        lr_config(_cfg(**kw), 1)


@pytest.mark.parametrize("name, reference", [
    # ../shared/REFERENCE.md and the yaml headers: PaddleClas DLA 64 x 4 devices; PeleeNet 256 x 2 GPUs
    ("dla34_imagenet2012_config.yaml", 256), ("dla60_imagenet2012_config.yaml", 256),
    ("peleenet_imagenet2012_config.yaml", 512), ("peleenet_finetune_config.yaml", 512)])
def test_imagenet_recipes_state_their_reference_batch(name, reference):
    assert yaml.safe_load((ROOT / "config" / name).read_text())["reference_batch_size"] == reference
    if name.startswith("peleenet_imagenet"):
        assert "batch 256 × 2 GPUs" in (SHARED / "REFERENCE.md").read_text()


# --------------------------------------------------------------------------- end to end
BASE = """model: dla46_c
num_classes: 10
device_target: CPU
mode: PYNATIVE
seed: 1
image_size: 32
crop_pct: 1.0
batch_size: 4
num_parallel_workers: 1
hflip: 0.0
lr_scheduler: cosine
lr: 0.05
warmup_epochs: 0
epoch_size: 2
log_interval: 1
keep_checkpoint_max: 10
eval_during_train: False
deterministic: True
gradient_accumulation_steps: 2
reference_batch_size: 16
"""


@pytest.fixture()
def recipe(tmp_path, demo_data):
    lines = (demo_data / "train_list.txt").read_text().splitlines()
    (tmp_path / "train.txt").write_text("\n".join(lines[:36]) + "\n")
    config = tmp_path / "recipe.yaml"
    config.write_text(BASE + f"data_path: {demo_data}\ncls_label_path_train: {tmp_path / 'train.txt'}\n"
                      "cls_label_path_val: val_list.txt\n")

    def train(out, *extra, check=True):
        return run_script("dla/train.py", "--config_path", config, "--output_dir", tmp_path / out, *extra,
                          env=QUIET, check=check)
    train.argv = lambda out, *extra: [sys.executable, str(ROOT / "dla" / "train.py"), "--config_path", str(config),
                                      "--output_dir", str(tmp_path / out), *map(str, extra)]
    return train


def _kill_after(argv, line_start):
    """Start ``argv``, SIGKILL it once it prints a line starting with ``line_start``."""
    proc = subprocess.Popen(argv, cwd=ROOT, env=dict(os.environ, **QUIET), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith(line_start):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    return proc.returncode


@pytest.mark.slow
def test_accumulation_counts_optimizer_steps_and_resumes_mid_epoch(recipe, tmp_path):
    """One uninterrupted run; a run resumed from its step-3 checkpoint; the same checkpoint refused
    with another accumulation; a run killed during epoch 1 and resumed from its newest checkpoint."""
    full = recipe("full", "--save_checkpoint_steps", 3, "--lr_scale", "linear").stdout
    assert "4 steps/epoch" in full and "global batch 8 (4/device x 1 device x 2 accumulated)" in full
    assert "lr 0.025," in full and "WARNING" not in full  # lr_scale linear: 0.05 x 8 / reference 16
    logged = re.findall(r"epoch: (\d) step: (\d)/(\d), loss: [0-9.]+, lr: ([0-9.]+)", full)
    assert [(int(e), int(s), int(n)) for e, s, n, _ in logged] == [(e, s, 4) for e in (1, 2) for s in (1, 2, 3, 4)]
    # cosine from the scaled 0.025 over 8 optimizer steps, one value per step: 0.0125 * (1 + cos(pi * t / 8))
    assert [float(lr) for *_, lr in logged] == pytest.approx(
        [round(0.0125 * (1 + math.cos(math.pi * t / 8)), 6) for t in range(8)], abs=1e-6)
    ckpt = tmp_path / "full" / "ckpt"
    assert sorted(p.name for p in ckpt.glob("dla46_c-*.ckpt")) == [
        "dla46_c-1_3.ckpt", "dla46_c-1_4.ckpt", "dla46_c-2_2.ckpt", "dla46_c-2_4.ckpt"]
    final = ms.load_checkpoint(str(ckpt / "dla46_c-2_4.ckpt"))
    assert int(final["global_step"].asnumpy()[0]) == 8 and int(final["step_num"].asnumpy()) == 16  # batches

    resumed = recipe("resumed", "--resume", ckpt / "dla46_c-1_3.ckpt", "--lr_scale", "linear").stdout
    assert "epochs 1..2 (epoch 1 from step 4)" in resumed
    assert re.findall(r"epoch: (\d) step: (\d)/4", resumed) == [("1", "4"), ("2", "1"), ("2", "2"), ("2", "3"),
                                                                ("2", "4")]
    got = ms.load_checkpoint(str(tmp_path / "resumed" / "ckpt" / "dla46_c-2_4.ckpt"))
    for name, value in final.items():
        np.testing.assert_allclose(got[name].asnumpy(), value.asnumpy(), rtol=1e-5, atol=1e-6, err_msg=name)

    refused = recipe("refused", "--resume", ckpt / "dla46_c-1_3.ckpt", "--gradient_accumulation_steps", 1,
                     check=False)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    errors = [l for l in refused.stderr.splitlines() if "error" in l.lower() and "WARNING" not in l]
    assert len(errors) == 1 and "saved mid-epoch (epoch 1 step 3)" in errors[0], refused.stderr[-2000:]
    assert not (tmp_path / "refused" / "ckpt").exists() or not list((tmp_path / "refused" / "ckpt").iterdir())

    # killed (SIGKILL) in epoch 1 while saving every step: the newest checkpoint goes on to the same end
    assert _kill_after(recipe.argv("killed", "--save_checkpoint_steps", 1, "--lr_scale", "linear"),
                       "epoch: 1 step: 3/4") == -signal.SIGKILL
    newest = max((tmp_path / "killed" / "ckpt").glob("dla46_c-*.ckpt"), key=os.path.getmtime)
    assert newest.name in ("dla46_c-1_2.ckpt", "dla46_c-1_3.ckpt", "dla46_c-1_4.ckpt"), newest.name
    recipe("after_kill", "--resume", newest, "--lr_scale", "linear")
    got = ms.load_checkpoint(str(tmp_path / "after_kill" / "ckpt" / "dla46_c-2_4.ckpt"))
    for name, value in final.items():
        np.testing.assert_allclose(got[name].asnumpy(), value.asnumpy(), rtol=1e-5, atol=1e-6, err_msg=name)
