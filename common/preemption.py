"""Preemption: Slurm, Kubernetes and ModelArts end a job with SIGTERM and a grace period, then SIGKILL.

On the first SIGTERM the run finishes the step in progress, saves a resumable checkpoint at that step
boundary (the periodic checkpoints' saver: atomic, with the counters a mid-epoch ``--resume`` needs),
prints one line naming it and the command that continues the run, and exits 143 (128 + SIGTERM,
what schedulers expect). A second SIGTERM, or Ctrl-C after the first, exits at once without saving.

Why not MindSpore's ``OnRequestExit`` (mindspore.train, 2.10): it saves only when
``MS_ENABLE_GRACEFUL_EXIT=1`` and the network carries a ``graceful_exit`` parameter, writes with plain
``save_checkpoint`` (a kill mid-save leaves a torn file) into ``rank_<id>/Net_train.ckpt`` without our
counters (so a mid-epoch resume could not find its place in the data), and reloads that file into the
network at every train begin, which would undo ``--resume``. Its idea (a flag set by the handler, acted
on at the step end) is kept.

Limits: with ``dataset_sink_mode`` True (Ascend/GPU) a step boundary is the end of a sink; on several
ranks every rank must get the signal (schedulers send it to every process of the job): each stops at
its next step boundary and rank 0 saves.
"""
import contextlib
import os
import shlex
import signal
import sys
import threading

from mindspore.train import Callback

from common.errors import Preempted


class Preemption(Callback):
    """Turn SIGTERM into a checkpoint at the next step boundary and a ``Preempted`` stop (last callback:
    the EMA and the progress line have seen the step). ``saver``: the run's ``CheckpointSaver``."""

    def __init__(self, saver, accumulation=1, rank=0):
        super().__init__()
        self.saver, self.accumulation, self.rank = saver, max(1, int(accumulation)), rank
        self.signal = None
        self._previous = {}

    @contextlib.contextmanager
    def installed(self):
        """The handlers for the ``with`` block (the whole training: both fits of a mid-epoch resume); none
        outside the main thread (where Python cannot set them: a notebook's worker thread)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        self._previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, self._first)}
        try:
            yield self
        finally:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)

    def _first(self, signum, _frame):
        self.signal = signum
        self._previous.setdefault(signal.SIGINT, signal.getsignal(signal.SIGINT))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._again)

    @staticmethod
    def _again(signum, _frame):
        from common.run_lock import release_all
        release_all()  # the output folder's lock: the next run need not take it over
        print(f"{signal.Signals(signum).name} again: exiting now, without a checkpoint", file=sys.stderr, flush=True)
        os._exit(128 + signum)  # at once: no step end, no save, no thread joins

    def on_train_begin(self, run_context):
        if self.signal is not None:  # before the first step: nothing new to save
            raise Preempted(f"{signal.Signals(self.signal).name} before training started: nothing to save; "
                            f"run the same command again")

    def on_train_step_end(self, run_context):
        cb = run_context.original_args()
        if self.signal is None or cb.cur_step_num % self.accumulation:
            return  # no signal, or mid accumulation (no optimizer step yet)
        steps = cb.batch_num // self.accumulation
        within = (cb.cur_step_num // self.accumulation) % steps
        epoch = cb.cur_epoch_num - 1 if within else cb.cur_epoch_num
        name = signal.Signals(self.signal).name
        if self.rank != 0:
            raise Preempted(f"{name}: rank {self.rank} stopped at epoch {cb.cur_epoch_num} step {within or steps}")
        path = self.saver.save(cb, epoch, within)
        raise Preempted(f"{name}: stopped at epoch {cb.cur_epoch_num} step {within or steps}, saved {path}; "
                        f"continue with: {resume_command(path)}")


def resume_command(path, argv=None):
    """This process's command line with ``--resume path`` in place of any ``--resume`` it had."""
    argv = list(sys.argv if argv is None else argv)
    kept, skip = [], False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg == "--resume":
            skip = True
        elif not arg.startswith("--resume="):
            kept.append(arg)
    return shlex.join(["python", argv[0], *kept, "--resume", path])
