"""Dataset sink mode (Ascend/GPU ImageNet configs): MindSpore calls the step callbacks once per sunk
epoch with ``cur_step_num`` advanced by the whole epoch. MindSpore 2.10 runs CPU without sinking
(``Model.train`` falls back), so the callbacks are driven here the way ``Model._train_dataset_sink_process``
drives them: real ``RunContext``/callback params, a real network saved by ``CheckpointSaver``."""
import time

import numpy as np
import pytest

import common  # noqa: F401
import mindspore as ms
from mindspore import nn
from mindspore.train.callback import RunContext, _InternalCallbackParam  # what Model.train builds

from common.callbacks import CheckpointSaver, ProgressLogger, RunCounters
from common.config import parse_args

STEPS, BATCH, EPOCHS = 4, 8, 3


def sink_train(callbacks, initial_epoch, epoch_seconds=0.2):
    """Model.train(EPOCHS, dataset of STEPS batches, dataset_sink_mode=True, initial_epoch=...) in GRAPH mode."""
    cb = _InternalCallbackParam()
    cb.train_network, cb.batch_num, cb.epoch_num = nn.Dense(3, 2), STEPS, EPOCHS - initial_epoch
    cb.cur_step_num, cb.net_outputs = 0, ms.Tensor(np.float32(1.5))
    context = RunContext(cb)
    for callback in callbacks:
        callback.on_train_begin(context)
    for epoch in range(initial_epoch, EPOCHS):
        cb.cur_epoch_num = epoch + 1
        for callback in callbacks:
            callback.on_train_epoch_begin(context)
        cb.cur_step_num += STEPS  # the whole epoch runs on the device
        for callback in callbacks:
            callback.on_train_step_begin(context)
        time.sleep(epoch_seconds)
        for callback in callbacks:
            callback.on_train_step_end(context)
        for callback in callbacks:
            callback.on_train_epoch_end(context)
    return cb


@pytest.mark.parametrize("initial_epoch", [0, 1])
def test_sunk_epochs_log_per_step_costs_and_save_whole_run_counters(tmp_path, initial_epoch):
    lines = []
    logger = ProgressLogger([0.1] * (EPOCHS * STEPS), BATCH, log_interval=2,
                            print_fn=lambda line, **_: lines.append(line))
    saver = CheckpointSaver(str(tmp_path), "net", interval=1, keep_max=5)
    sink_train([RunCounters(initial_epoch), logger, saver], initial_epoch)

    assert [line.split(",")[0] for line in lines] == [f"epoch: {e} step: {STEPS}/{STEPS}"
                                                     for e in range(initial_epoch + 1, EPOCHS + 1)]
    ips = float(lines[-1].split("ips: ")[1].split()[0])
    # 4 steps of 8 images in ~0.2 s: ~160 images/s (per call it would be 8 / 0.2 = 40)
    assert 100 < ips < 170, lines[-1]
    for epoch in range(initial_epoch + 1, EPOCHS + 1):
        state = ms.load_checkpoint(str(tmp_path / f"net-{epoch}_{STEPS}.ckpt"))
        assert int(state["epoch_num"].asnumpy()) == epoch and int(state["step_num"].asnumpy()) == epoch * STEPS


def test_imagenet_configs_sink_on_ascend_and_gpu_only(repo_root):
    for name in ("dla34_imagenet2012", "dla60_imagenet2012", "peleenet_imagenet2012", "peleenet_finetune",
                 "resnet50_imagenet2012"):
        cfg = parse_args([], str(repo_root / "config" / f"{name}_config.yaml"))
        assert cfg.device_target in ("Ascend", "GPU") and cfg.dataset_sink_mode is True, name
    for name in ("dla_demo", "peleenet_demo", "multigrain_demo"):
        assert parse_args([], str(repo_root / "config" / f"{name}_config.yaml")).dataset_sink_mode is False


def test_ema_with_sink_mode_is_refused_in_one_line(repo_root, tmp_path):
    """The EMA is updated by a step callback, which a sunk epoch calls once: refused, before any output."""
    from conftest import run_script
    out = tmp_path / "out"
    proc = run_script(repo_root / "dla" / "train.py", "--config_path", repo_root / "config" / "dla_demo_config.yaml",
                      "--device_target", "GPU", "--dataset_sink_mode", "True", "--ema_decay", "0.99",
                      "--data_path", tmp_path, "--output_dir", out, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: config error: ema_decay")
    assert not out.exists()
