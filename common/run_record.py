"""What a training run leaves beside its checkpoints (docs/run_record.md): ``train.log`` (the printed lines),
``summary.csv`` (one row per epoch, timm's column names), ``curves.png`` and, with ``--tensorboard True``,
TensorBoard events under ``tensorboard/``.

Why the summary is rewritten whole at every epoch end (to a temporary file, then renamed): a SIGKILL then
never leaves half a row, and a ``--resume``d run keeps the rows up to its checkpoint's epoch byte for byte
(their text is copied, not re-formatted) and replaces the ones after it."""
import contextlib
import csv
import io
import math
import os
import sys
import time

import numpy as np
from mindspore.train import Callback

from common.curves import CURVES, SUMMARY, read_summary, save_curves  # matplotlib loads when drawing
from common.errors import ConfigError

# timm's names where it has the figure (train.py's update_summary: epoch, train_loss, eval_top1, eval_top5, lr)
BASE_COLUMNS = ("epoch", "step", "lr", "train_loss", "eval_top1", "eval_top5")
EMA_COLUMNS = ("ema_top1",)
TIME_COLUMNS = ("epoch_time_s", "images_per_s")


def log_name(rank, group_size):
    return f"train_rank{rank}.log" if group_size > 1 else "train.log"


class _Tee(io.TextIOBase):
    """A text stream writing to ``stream`` (unchanged) and to ``log``."""

    def __init__(self, stream, log):
        super().__init__()
        self.stream, self.log = stream, log

    def write(self, text):
        self.log.write(text)
        return self.stream.write(text)

    def flush(self):
        self.log.flush()
        self.stream.flush()

    encoding = property(lambda self: self.stream.encoding)
    errors = property(lambda self: self.stream.errors)

    def isatty(self):
        return self.stream.isatty()

    def fileno(self):
        return self.stream.fileno()


class RunLog:
    """The train log: what is printed is held until ``open()`` (the run writes its first file, config.yaml),
    then appended to the file (a ``--resume`` continues it, an earlier run's lines stay). A run refused
    before that leaves no file, as it leaves no config.yaml."""

    def __init__(self, path):
        self.path, self.file, self.pending = path, None, []

    def write(self, text):
        if self.file is None:
            self.pending.append(text)
        else:
            self.file.write(text)

    def flush(self):
        if self.file is not None:
            self.file.flush()

    def open(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.file = open(self.path, "a", encoding="utf-8", buffering=1)  # line-buffered: a kill loses no line
        self.file.write("".join(self.pending))
        self.pending = []


@contextlib.contextmanager
def tee_output(out_dir, rank, group_size):
    """Within: every line printed to stdout/stderr also goes to the ``RunLog`` yielded (``out_dir``'s train log)."""
    log = RunLog(os.path.join(out_dir, log_name(rank, group_size)))
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tee(sys.stdout, log), _Tee(sys.stderr, log)
    try:
        yield log
    finally:
        sys.stdout, sys.stderr = saved
        if log.file is not None:
            log.file.close()


def summary_columns(ema=False):
    return BASE_COLUMNS + (EMA_COLUMNS if ema else ()) + TIME_COLUMNS


def _kept_lines(path, columns, last_epoch):
    """The raw lines of an earlier summary.csv up to ``last_epoch`` (header first), or None when there is
    none or its columns differ (then the run starts a new one)."""
    if not os.path.isfile(path):
        return None
    with open(path, newline="", encoding="utf-8") as f:
        lines = f.read().splitlines(keepends=True)
    if not lines or next(csv.reader(lines[:1])) != list(columns):
        return None
    return lines[:1] + [line for line in lines[1:] if line.strip() and int(float(line.split(",", 1)[0])) <= last_epoch]


def _write_atomic(path, text):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _cell(value):
    return "" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))


def check_tensorboard(cfg):
    """--tensorboard True without TensorBoard: one line naming the package (before anything is written)."""
    if not cfg.tensorboard:
        return
    try:
        import tensorboard.summary.writer.event_file_writer  # noqa: F401
    except ImportError:
        raise ConfigError("config error: --tensorboard True writes events with the tensorboard package: "
                          "pip install tensorboard (or --tensorboard False)") from None


class EventWriter:
    """Scalars into a TensorBoard event file with TensorBoard's own writer (the one torch.utils.tensorboard
    uses; no TensorFlow or torch needed). Its ``flush`` waits until the queued events are on disk
    (tensorboardX's only flushes what its thread has taken), so an epoch's scalars survive a kill.
    ``purge_step``: a restarted run's first step; TensorBoard drops the earlier run's events from there on."""

    def __init__(self, logdir, purge_step=None):
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
        self._event, self._summary = Event, Summary
        self._writer = EventFileWriter(logdir)
        if purge_step is not None:
            self._writer.add_event(Event(step=purge_step, wall_time=time.time(),
                                         session_log=SessionLog(status=SessionLog.START)))

    def add_scalar(self, tag, value, step):
        summary = self._summary(value=[self._summary.Value(tag=tag, simple_value=float(value))])
        self._writer.add_event(self._event(step=int(step), wall_time=time.time(), summary=summary))

    def flush(self):
        self._writer.flush()

    def close(self):
        self._writer.close()


class RunRecord(Callback):
    """Rank 0: at every epoch end a row of ``summary.csv``; after an evaluated epoch ``curves.png``; with
    ``tensorboard`` the row's scalars (``epoch/<column>``) at each epoch's last step and ``train/loss``,
    ``train/lr`` every ``log_interval`` optimizer steps, all against the optimizer step.

    Put after the eval callback (``eval_cb``: its ``history`` and ``averaged.history`` give top-1/top-5).
    ``start_epoch``: the rows up to this epoch of an earlier summary.csv in ``out_dir`` are kept;
    ``resume_step``: the optimizer step a ``--resume`` starts after (TensorBoard's ``purge_step``)."""

    def __init__(self, out_dir, lr_per_step, global_batch, start_epoch=0, eval_cb=None, ema=False, accumulation=1,
                 log_interval=10, tensorboard=False, rank=0, resume_step=0):
        super().__init__()
        self.out_dir, self.lr, self.global_batch, self.eval_cb = out_dir, lr_per_step, global_batch, eval_cb
        self.acc, self.log_interval, self.rank = max(1, int(accumulation)), max(1, int(log_interval)), rank
        self.columns = summary_columns(ema=ema)
        self.path = os.path.join(out_dir, SUMMARY)
        self.lines = None
        self.writer = None
        if rank == 0:
            kept = _kept_lines(self.path, self.columns, start_epoch)
            self.lines = kept or [",".join(self.columns) + "\n"]
            if tensorboard:  # one x axis, the optimizer step; a resumed run drops the stale events after its step
                purge = resume_step + 1 if resume_step else None
                self.writer = EventWriter(os.path.join(out_dir, "tensorboard"), purge)

    def on_train_epoch_begin(self, run_context):
        self._begin = self._last = time.time()
        self._losses = []
        self._first_step = run_context.original_args().cur_step_num

    def on_train_step_end(self, run_context):
        from common.callbacks import _loss_value
        cb = run_context.original_args()
        self._last = time.time()
        self._losses.append(_loss_value(cb.net_outputs))
        step = cb.cur_step_num // self.acc
        if self.writer is not None and cb.cur_step_num % self.acc == 0 and step % self.log_interval == 0:
            self.writer.add_scalar("train/loss", self._losses[-1], step)
            self.writer.add_scalar("train/lr", self._lr(step), step)

    def _lr(self, step):
        return float(self.lr[min(step - 1, len(self.lr) - 1)]) if self.lr else 0.0

    def on_train_epoch_end(self, run_context):
        if self.rank != 0:
            return
        cb = run_context.original_args()
        epoch, step = cb.cur_epoch_num, cb.cur_step_num // self.acc
        seconds = max(self._last - self._begin, 1e-9)
        images = (cb.cur_step_num - self._first_step) * self.global_batch // self.acc
        row = {"epoch": epoch, "step": step, "lr": self._lr(step),
               "train_loss": float(np.mean(self._losses)) if self._losses else None,
               "epoch_time_s": seconds, "images_per_s": images / seconds}
        row.update(self._eval_results(epoch))
        self.lines.append(",".join(_cell(row.get(c)) for c in self.columns) + "\n")
        _write_atomic(self.path, "".join(self.lines))
        if row.get("eval_top1") is not None:
            save_curves({os.path.basename(self.out_dir.rstrip(os.sep)) or "run": read_summary(self.path)},
                        os.path.join(self.out_dir, CURVES))
        if self.writer is not None:
            for key, value in row.items():
                if key not in ("epoch", "step") and value is not None and math.isfinite(value):
                    self.writer.add_scalar(f"epoch/{key}", value, step)
            self.writer.flush()

    def _eval_results(self, epoch):
        found = {}
        if self.eval_cb is None:
            return found
        for epoch_done, result in self.eval_cb.history:
            if epoch_done == epoch:
                found.update(eval_top1=float(result["top_1_accuracy"]), eval_top5=float(result["top_5_accuracy"]))
        for epoch_done, result in self.eval_cb.averaged.history:
            if epoch_done == epoch:
                found["ema_top1"] = float(result["top_1_accuracy"])
        return found

    def on_train_end(self, run_context):
        if self.writer is not None:
            self.writer.close()
