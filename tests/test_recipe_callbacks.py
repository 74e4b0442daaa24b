"""Callbacks on resume and on failure: whole-run counters after ``initial_epoch``, no checkpoint
of non-finite weights, the best-so-far carried into a resumed run."""
import os

import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path first)
import mindspore as ms
import mindspore.dataset as ds
from mindspore import nn
from mindspore.train import Callback, Model

from common.callbacks import CheckpointSaver, EvalCallback, NonFiniteLoss, RunCounters
from common.checkpoint import read_training_state, save_checkpoint_atomic


class Toy(nn.Cell):
    def __init__(self, value=0.5):
        super().__init__()
        self.w = ms.Parameter(ms.Tensor(np.full(3, value, np.float32)), name="w")

    def construct(self, x):
        return x * 0 + self.w


class MeanSum(nn.Cell):
    def construct(self, logits, label):
        return logits.sum() / logits.shape[0]


def _data(samples=6, batch=2):
    return ds.NumpySlicesDataset({"x": np.zeros((samples, 3), np.float32),
                                  "y": np.zeros((samples,), np.int32)}, shuffle=False).batch(batch)


class Record(Callback):
    def __init__(self):
        super().__init__()
        self.steps, self.last_epochs = [], []

    def on_train_step_end(self, run_context):
        cb = run_context.original_args()
        self.steps.append(cb.cur_step_num)
        self.last_epochs.append(cb.epoch_num)


def test_counters_count_the_whole_run_after_a_resume(tmp_path):
    ms.set_context(mode=ms.GRAPH_MODE)
    net = Toy()
    model = Model(net, loss_fn=MeanSum(), optimizer=nn.SGD(net.trainable_params(), 0.1))
    record = Record()
    # interval 2 over 3 epochs: only the final epoch 3 is saved after resuming at 2
    saver = CheckpointSaver(str(tmp_path), "toy", interval=2, keep_max=5)
    model.train(3, _data(), callbacks=[RunCounters(2), record, saver], dataset_sink_mode=False, initial_epoch=2)
    assert record.steps == [7, 8, 9]  # epochs 1-2 had 3 steps each
    assert set(record.last_epochs) == {3}
    assert sorted(os.listdir(tmp_path)) == ["toy-3_3.ckpt"]
    assert read_training_state(str(tmp_path / "toy-3_3.ckpt")) == {"epoch_num": 3, "step_num": 9, "step_in_epoch": 0,
                                                                   "steps_per_epoch": 3}


def test_step_checkpoints_are_named_by_epoch_and_step_and_pruned(tmp_path):
    """save_checkpoint_steps 2 over 3 epochs of 3 steps: whole-run steps 2, 4, 6, 8 and the last one (9).
    A mid-epoch file is named after the epoch in progress and its step (ModelZoo's ``prefix-E_S``)."""
    ms.set_context(mode=ms.GRAPH_MODE)
    net = Toy()
    model = Model(net, loss_fn=MeanSum(), optimizer=nn.SGD(net.trainable_params(), 0.1))
    info = {"device_num": 1, "batch_size": 2, "gradient_accumulation_steps": 1}
    saver = CheckpointSaver(str(tmp_path), "toy", interval=5, keep_max=10, every_steps=2, run_info=info)
    model.train(3, _data(), callbacks=[RunCounters(0), saver], dataset_sink_mode=False)
    assert sorted(os.listdir(tmp_path)) == ["toy-1_2.ckpt", "toy-2_1.ckpt", "toy-2_3.ckpt", "toy-3_2.ckpt",
                                            "toy-3_3.ckpt"]
    assert read_training_state(str(tmp_path / "toy-2_1.ckpt")) == {
        "epoch_num": 1, "step_num": 4, "step_in_epoch": 1, "steps_per_epoch": 3, **info}
    assert read_training_state(str(tmp_path / "toy-2_3.ckpt"))["step_in_epoch"] == 0
    pruned = CheckpointSaver(str(tmp_path / "pruned"), "toy", interval=5, keep_max=2, every_steps=2, run_info=info)
    model.train(3, _data(), callbacks=[RunCounters(0), pruned], dataset_sink_mode=False)
    assert sorted(os.listdir(tmp_path / "pruned")) == ["toy-3_2.ckpt", "toy-3_3.ckpt"]  # no temporary files left


def test_non_finite_weights_are_never_saved(tmp_path):
    ms.set_context(mode=ms.GRAPH_MODE)
    net = Toy()
    model = Model(net, loss_fn=MeanSum(), optimizer=nn.SGD(net.trainable_params(), 1e38))  # w -> -inf
    saver = CheckpointSaver(str(tmp_path), "toy", interval=1)
    with pytest.raises(NonFiniteLoss, match="not finite after epoch 1"):
        model.train(1, _data(samples=4, batch=1), callbacks=[saver], dataset_sink_mode=False)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".ckpt")]


def test_best_so_far_is_restored_when_resuming_into_the_same_directory(tmp_path):
    save_checkpoint_atomic(Toy(), str(tmp_path / "best.ckpt"), append_dict={"epoch_num": 4, "top_1_accuracy": 0.75})
    callback = EvalCallback(model=None, dataset=None, net=Toy(), directory=str(tmp_path))
    callback.plain.restore(str(tmp_path / "best.ckpt"), "top_1_accuracy")
    assert (callback.best, callback.best_epoch) == (pytest.approx(0.75), 4)
    fresh = EvalCallback(model=None, dataset=None, net=Toy(), directory=str(tmp_path / "new"))
    fresh.averaged.restore(str(tmp_path / "new" / "ema_best.ckpt"), "top_1_accuracy")  # no file: unchanged
    assert fresh.averaged.best == -1.0
