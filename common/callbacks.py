"""Training callbacks: progress line, periodic safe checkpoints, eval with best checkpoint."""
import glob
import math
import os
import time

import numpy as np
import mindspore as ms
from mindspore.train import Callback

from common.checkpoint import save_checkpoint_atomic


def _fmt_eta(seconds):
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _loss_value(outputs):
    """The scalar loss from what the train network returned (loss, or (loss, overflow, scale))."""
    if isinstance(outputs, (tuple, list)):
        outputs = outputs[0]
    return float(np.mean(outputs.asnumpy())) if isinstance(outputs, ms.Tensor) else float(outputs)


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or inf: training is stopped, the last good checkpoint is kept."""


class ProgressLogger(Callback):
    """``epoch: E step: S/N, loss: …, lr: …, batch_cost: … s, reader_cost: … s, ips: … images/sec, eta: …``

    Also stops training with one line when the loss is not finite."""

    def __init__(self, lr_per_step, batch_size, log_interval=10, rank=0, print_fn=print):
        super().__init__()
        self.lr = lr_per_step
        self.batch_size = batch_size
        self.log_interval = max(1, int(log_interval))
        self.rank = rank
        self.print = print_fn
        self._step_end = None
        self._costs = []

    def on_train_epoch_begin(self, run_context):
        self._step_end = time.time()
        self._costs = []

    def on_train_step_begin(self, run_context):
        self._step_begin = time.time()
        self._reader = self._step_begin - (self._step_end or self._step_begin)

    def on_train_step_end(self, run_context):
        cb = run_context.original_args()
        now = time.time()
        batch_cost = now - self._step_end if self._step_end else now - self._step_begin
        self._step_end = now
        self._costs.append((batch_cost, self._reader))
        loss = _loss_value(cb.net_outputs)
        if not math.isfinite(loss):
            run_context.request_stop()
            raise NonFiniteLoss(f"loss is {loss} at epoch {cb.cur_epoch_num} step {cb.cur_step_num}: "
                                f"training stopped; the last good checkpoint is kept")
        steps = cb.batch_num
        step_in_epoch = (cb.cur_step_num - 1) % steps + 1
        if self.rank != 0 or (step_in_epoch % self.log_interval and step_in_epoch != steps):
            return
        recent = self._costs[-self.log_interval:]
        batch_avg = float(np.mean([c[0] for c in recent]))
        reader_avg = float(np.mean([c[1] for c in recent]))
        lr = self.lr[min(cb.cur_step_num - 1, len(self.lr) - 1)] if self.lr else 0.0
        remaining = (cb.epoch_num - cb.cur_epoch_num) * steps + steps - step_in_epoch
        self.print(f"epoch: {cb.cur_epoch_num} step: {step_in_epoch}/{steps}, loss: {loss:.5f}, lr: {lr:.6f}, "
                   f"batch_cost: {batch_avg:.5f} s, reader_cost: {reader_avg:.5f} s, "
                   f"ips: {self.batch_size / max(batch_avg, 1e-9):.2f} images/sec, "
                   f"eta: {_fmt_eta(remaining * batch_avg)}", flush=True)


class CheckpointSaver(Callback):
    """Every ``interval`` epochs, save the whole train network (weights + optimizer state) with
    the epoch/step counters, atomically, keeping the newest ``keep_max``. Rank 0 only unless
    ``all_ranks``."""

    def __init__(self, directory, prefix, interval=1, keep_max=5, rank=0, extra_saves=()):
        super().__init__()
        self.directory, self.prefix = directory, prefix
        self.interval, self.keep_max, self.rank = max(1, interval), keep_max, rank
        self.extra_saves = extra_saves  # callables (cb_params, epoch) run after each save, e.g. EMA
        os.makedirs(directory, exist_ok=True)

    def on_train_epoch_end(self, run_context):
        cb = run_context.original_args()
        epoch = cb.cur_epoch_num
        if self.rank != 0 or (epoch % self.interval and epoch != cb.epoch_num):
            return
        path = os.path.join(self.directory, f"{self.prefix}-{epoch}_{cb.batch_num}.ckpt")
        counters = {"epoch_num": epoch, "step_num": cb.cur_step_num}
        save_checkpoint_atomic(cb.train_network, path, append_dict=counters)
        for save in self.extra_saves:
            save(cb, epoch)
        self._prune()

    def _prune(self):
        found = glob.glob(os.path.join(self.directory, f"{self.prefix}-*_*.ckpt"))
        found.sort(key=os.path.getmtime)
        for old in found[:-self.keep_max] if self.keep_max > 0 else []:
            os.remove(old)


class EvalCallback(Callback):
    """Evaluate every ``interval`` epochs; keep ``best.ckpt`` (network weights) on rank 0."""

    def __init__(self, model, dataset, net, directory, interval=1, rank=0, metric="top_1_accuracy",
                 print_fn=print):
        super().__init__()
        self.model, self.dataset, self.net = model, dataset, net
        self.directory, self.interval, self.rank, self.metric = directory, max(1, interval), rank, metric
        self.best = -1.0
        self.best_epoch = 0
        self.print = print_fn
        self.history = []

    def on_train_epoch_end(self, run_context):
        cb = run_context.original_args()
        epoch = cb.cur_epoch_num
        if epoch % self.interval and epoch != cb.epoch_num:
            return
        result = self.model.eval(self.dataset, dataset_sink_mode=False)
        self.history.append((epoch, result))
        value = result[self.metric]
        if value > self.best:
            self.best, self.best_epoch = value, epoch
            if self.rank == 0:
                save_checkpoint_atomic(self.net, os.path.join(self.directory, "best.ckpt"),
                                       append_dict={"epoch_num": epoch})
        if self.rank == 0:
            metrics = ", ".join(f"{k}: {v:.4f}" for k, v in result.items())
            self.print(f"epoch: {epoch} eval: {metrics}, best {self.metric}: {self.best:.4f} "
                       f"(epoch {self.best_epoch})", flush=True)
