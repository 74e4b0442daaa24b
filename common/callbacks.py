"""Training callbacks: progress line, periodic safe checkpoints, eval with best checkpoint.

On resume ``Model.train(initial_epoch=k)`` restarts ``cur_step_num`` at 0 and sets ``epoch_num``
to the epochs left; ``RunCounters`` (first in the list) makes both whole-run counts again, so
the other callbacks index the lr schedule, name checkpoints and find the last epoch correctly."""
import math
import os
import time

import numpy as np
import mindspore as ms
from mindspore.train import Callback

from common.checkpoint import save_checkpoint_atomic
from common.errors import Diverged
from common.outputs import make_output_dir
from common.weights import load_checkpoint_file


def _fmt_eta(seconds):
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _loss_value(outputs):
    """The scalar loss from what the train network returned (loss, or (loss, overflow, scale))."""
    if isinstance(outputs, (tuple, list)):
        outputs = outputs[0]
    return float(np.mean(outputs.asnumpy())) if isinstance(outputs, ms.Tensor) else float(outputs)


class NonFiniteLoss(Diverged):
    """The loss became NaN or inf: training is stopped, the last good checkpoint is kept."""


class RunCounters(Callback):
    """Whole-run step/epoch counters in ``cb_params`` after a resume at ``initial_epoch``."""

    def __init__(self, initial_epoch=0, initial_batch=0, batch_num=None, epoch_num=None):
        super().__init__()
        self.initial_epoch = int(initial_epoch)
        # Mid-epoch resume trains the rest of an epoch from a shorter dataset: the batches already
        # done, and that dataset's stand-ins for the whole epoch's batches and the run's epochs.
        self.initial_batch, self.batch_num, self.epoch_num = int(initial_batch), batch_num, epoch_num

    def on_train_begin(self, run_context):
        cb = run_context.original_args()
        cb.batch_num = self.batch_num or cb.batch_num
        cb.cur_step_num = self.initial_epoch * cb.batch_num + self.initial_batch
        cb.epoch_num = self.epoch_num or cb.epoch_num + self.initial_epoch


def _first_non_finite(params):
    """Name of the first parameter holding NaN/inf, or None."""
    return next((p.name for p in params if not np.isfinite(p.asnumpy()).all()), None)


class ProgressLogger(Callback):
    """``epoch: E step: S/N, loss: …, lr: …, batch_cost: … s, reader_cost: … s, ips: … images/sec, eta: …``

    Also stops training with one line when the loss is not finite. With ``accumulation`` A > 1
    steps are optimizer steps (A batches each): S/N, lr, batch_cost and ips count those."""

    def __init__(self, lr_per_step, batch_size, log_interval=10, rank=0, print_fn=print, accumulation=1):
        super().__init__()
        self.accumulation = max(1, int(accumulation))
        self.lr = lr_per_step
        self.batch_size = batch_size
        self.log_interval = max(1, int(log_interval))
        self.rank = rank
        self.print = print_fn
        self._step_end = None
        self._costs = []
        self._steps_seen = None

    def on_train_epoch_begin(self, run_context):
        self._step_end = time.time()
        self._costs = []
        self._steps_seen = run_context.original_args().cur_step_num

    def on_train_step_begin(self, run_context):
        self._step_begin = time.time()
        self._reader = self._step_begin - (self._step_end or self._step_begin)

    def on_train_step_end(self, run_context):
        cb = run_context.original_args()
        now = time.time()
        batch_cost = now - self._step_end if self._step_end else now - self._step_begin
        self._step_end = now
        # dataset sink mode: one call per sunk epoch, cur_step_num advanced by all its steps
        done = max(1, cb.cur_step_num - self._steps_seen) if self._steps_seen is not None else 1
        self._steps_seen = cb.cur_step_num
        self._costs.append((batch_cost / done, self._reader / done))
        loss = _loss_value(cb.net_outputs)
        if not math.isfinite(loss):
            run_context.request_stop()
            raise NonFiniteLoss(f"loss is {loss} at epoch {cb.cur_epoch_num} step {cb.cur_step_num}: "
                                f"training stopped; the last good checkpoint is kept")
        acc = self.accumulation
        if cb.cur_step_num % acc:
            return  # mid accumulation: no optimizer step yet
        steps = cb.batch_num // acc
        step_in_epoch = ((cb.cur_step_num - 1) % cb.batch_num + 1) // acc
        if self.rank != 0 or (step_in_epoch % self.log_interval and step_in_epoch != steps):
            return
        recent = self._costs[-self.log_interval * acc:]
        batch_avg = float(np.mean([c[0] for c in recent])) * acc
        reader_avg = float(np.mean([c[1] for c in recent])) * acc
        lr = self.lr[min(cb.cur_step_num // acc - 1, len(self.lr) - 1)] if self.lr else 0.0
        remaining = (cb.epoch_num - cb.cur_epoch_num) * steps + steps - step_in_epoch
        self.print(f"epoch: {cb.cur_epoch_num} step: {step_in_epoch}/{steps}, loss: {loss:.5f}, lr: {lr:.6f}, "
                   f"batch_cost: {batch_avg:.5f} s, reader_cost: {reader_avg:.5f} s, "
                   f"ips: {self.batch_size / max(batch_avg, 1e-9):.2f} images/sec, "
                   f"eta: {_fmt_eta(remaining * batch_avg)}", flush=True)


class CheckpointSaver(Callback):
    """Every ``interval`` epochs (and, with ``every_steps``, every that many optimizer steps),
    save the whole train network (weights + optimizer state) with the counters of
    ``common.training_state`` (and the EMA averages as ``ema.*``), atomically, keeping the newest
    ``keep_max``; with ``ema`` also ``ema-E_S.ckpt`` (the averaged weights alone). A mid-epoch
    save is named after the epoch in progress and its optimizer step (``model-3_40.ckpt``).
    Weights that are no longer finite are never saved. Rank 0 only.

    ``run_info``: the run's constants recorded with the counters (device_num, batch_size,
    gradient_accumulation_steps); ``accumulation`` batches make one optimizer step. With ``ranked`` the
    ``prefix`` checkpoints are pruned by ``common.ckpt_policy.TopKCheckpoints`` (``take_saved``), not here."""

    def __init__(self, directory, prefix, interval=1, keep_max=5, rank=0, extra_saves=(), ema=None,
                 every_steps=0, run_info=None, ranked=False):
        super().__init__()
        self.directory, self.prefix = directory, prefix
        self.interval, self.keep_max, self.rank = max(1, interval), keep_max, rank
        self.extra_saves = extra_saves  # callables (cb_params, epoch) run after each save
        self.ema = ema
        self.every_steps = max(0, int(every_steps))
        self.run_info = dict(run_info or {})
        self.accumulation = max(1, int(self.run_info.get("gradient_accumulation_steps", 1)))
        self._saved = {}  # prefix -> files this run saved, oldest first: only these are pruned
        self.ranked, self._new = ranked, []  # (path, completed epochs, step in epoch) not yet taken
        make_output_dir(directory)

    def on_train_step_end(self, run_context):
        cb = run_context.original_args()
        acc = self.accumulation
        if self.rank != 0 or not self.every_steps or cb.cur_step_num % acc:
            return
        step = cb.cur_step_num // acc
        within = step % (cb.batch_num // acc)
        if step % self.every_steps == 0 and within:  # at an epoch's end the epoch save runs
            self.save(cb, cb.cur_epoch_num - 1, within)

    def on_train_epoch_end(self, run_context):
        cb = run_context.original_args()
        epoch = cb.cur_epoch_num
        on_step = self.every_steps and (cb.cur_step_num // self.accumulation) % self.every_steps == 0
        if self.rank != 0 or (epoch % self.interval and epoch != cb.epoch_num and not on_step):
            return
        self.save(cb, epoch, 0)
        for save in self.extra_saves:
            save(cb, epoch)

    def save(self, cb, epoch, within):
        """Save after ``epoch`` whole epochs and ``within`` optimizer steps of the next; returns the path
        (also called on preemption, ``common.preemption``)."""
        bad = _first_non_finite(cb.train_network.get_parameters())
        where = f"epoch {epoch}" if not within else f"epoch {epoch + 1} step {within}"
        if bad:
            raise NonFiniteLoss(f"parameter {bad} is not finite after {where}: training stopped; "
                                f"the last good checkpoint is kept")
        steps = cb.batch_num // self.accumulation
        counters = {"epoch_num": epoch, "step_num": cb.cur_step_num, "step_in_epoch": within,
                    "steps_per_epoch": steps, **self.run_info}
        if self.ema is not None:
            counters.update(self.ema.state())
        label, step_label = (epoch, steps) if not within else (epoch + 1, within)
        path = self._path(self.prefix, label, step_label)
        save_checkpoint_atomic(cb.train_network, path, append_dict=counters)
        self._new.append((path, epoch, within))
        if self.ema is not None:
            save_checkpoint_atomic(self.ema.as_weights(), self._path("ema", label, step_label),
                                   append_dict={"epoch_num": epoch})
        if not self.ranked:
            self._prune(self.prefix)
        if self.ema is not None:
            self._prune("ema")
        return path

    def take_saved(self):
        """The ``prefix`` checkpoints saved since the last call: [(path, completed epochs, step in epoch)]."""
        new, self._new = self._new, []
        return new

    def _path(self, prefix, epoch, steps):
        path = os.path.join(self.directory, f"{prefix}-{epoch}_{steps}.ckpt")
        saved = self._saved.setdefault(prefix, [])
        if path not in saved:
            saved.append(path)
        return path

    def _prune(self, prefix):
        """Keep this run's newest ``keep_max``; files of an earlier run (the one resumed) are not counted."""
        found = [p for p in self._saved.get(prefix, []) if os.path.isfile(p)]
        for old in found[:-self.keep_max] if self.keep_max > 0 else []:
            os.remove(old)
            self._saved[prefix].remove(old)


class _BestTracker:
    """Best value of the metric so far, its epoch, every result, and the file keeping it."""

    def __init__(self, file_name, label):
        self.file_name, self.label = file_name, label
        self.best, self.best_epoch, self.history = -1.0, 0, []

    def restore(self, path, metric):
        """Take the best so far from an earlier run's file (resume into the same directory)."""
        if os.path.isfile(path):
            state = load_checkpoint_file(path, choice_func=lambda name: name in (metric, "epoch_num"))
            if metric in state:
                self.best = float(state[metric].asnumpy())
                self.best_epoch = int(state["epoch_num"].asnumpy())


class EvalCallback(Callback):
    """Evaluate every ``interval`` epochs; keep ``best.ckpt`` (network weights) on rank 0.

    With ``ema`` the averaged weights are evaluated too (swapped into the network) and the best
    of them kept as ``ema_best.ckpt``."""

    def __init__(self, model, dataset, net, directory, interval=1, rank=0, metric="top_1_accuracy",
                 print_fn=print, ema=None, reduce_fn=None):
        super().__init__()
        self.reduce_fn = reduce_fn  # this rank's result -> all ranks' (``common.distributed_eval``)
        self.model, self.dataset, self.net = model, dataset, net
        self.directory, self.interval, self.rank, self.metric = directory, max(1, interval), rank, metric
        self.print = print_fn
        self.ema = ema
        self.plain, self.averaged = _BestTracker("best.ckpt", ""), _BestTracker("ema_best.ckpt", " (ema)")
        make_output_dir(directory)

    # the plain weights' record, as before EMA existed
    best = property(lambda self: self.plain.best)
    best_epoch = property(lambda self: self.plain.best_epoch)
    history = property(lambda self: self.plain.history)

    def on_train_begin(self, run_context):
        if run_context.original_args().cur_step_num:  # resumed (see RunCounters): earlier bests count
            for track in (self.plain, self.averaged):
                track.restore(os.path.join(self.directory, track.file_name), self.metric)

    def on_train_epoch_end(self, run_context):
        cb = run_context.original_args()
        epoch = cb.cur_epoch_num
        if epoch % self.interval and epoch != cb.epoch_num:
            return
        self._evaluate(epoch, self.plain)
        if self.ema is not None:
            with self.ema.swapped():
                self._evaluate(epoch, self.averaged)

    def _evaluate(self, epoch, track):
        result = self.model.eval(self.dataset, dataset_sink_mode=False)
        if self.reduce_fn is not None:
            result = self.reduce_fn(result)
        track.history.append((epoch, result))
        if result[self.metric] > track.best:
            track.best, track.best_epoch = result[self.metric], epoch
            if self.rank == 0:
                save_checkpoint_atomic(self.net, os.path.join(self.directory, track.file_name),
                                       append_dict={"epoch_num": epoch, self.metric: float(track.best)})
        if self.rank == 0:
            metrics = ", ".join(f"{k}: {v:.4f}" for k, v in result.items())
            self.print(f"epoch: {epoch} eval{track.label}: {metrics}, best {self.metric}: {track.best:.4f} "
                       f"(epoch {track.best_epoch})", flush=True)


class EvalProgress(Callback):
    """``eval: [ 10/391] top-1: 0.7812, 512.3 images/s`` every ``log_interval`` batches of ``Model.eval`` (and
    after the last): the running top-1 of the batches so far, from the eval network's (loss, logits, label)."""

    def __init__(self, log_interval=10, rank=0, print_fn=print):
        super().__init__()
        self.log_interval, self.rank, self.print = max(1, int(log_interval)), rank, print_fn

    def on_eval_begin(self, run_context):
        self._start, self._seen, self._correct, self._done = time.time(), 0, 0, 0

    def on_eval_step_end(self, run_context):
        cb = run_context.original_args()
        logits, label = (out.asnumpy() for out in cb.net_outputs[1:3])
        label = label.argmax(-1) if label.ndim == logits.ndim else label  # one-hot (mixed) or class ids
        self._correct += int((logits.argmax(-1) == label.reshape(-1)).sum())
        self._seen += logits.shape[0]
        self._done += 1
        total = cb.batch_num
        if self.rank == 0 and (self._done % self.log_interval == 0 or self._done == total):
            width = len(str(total))
            rate = self._seen / max(time.time() - self._start, 1e-9)
            self.print(f"eval: [{self._done:>{width}}/{total}] top-1: {self._correct / self._seen:.4f}, "
                       f"{rate:.1f} images/s", flush=True)
