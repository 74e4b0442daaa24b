"""Where a resumed run continues: the epoch, the step within it, and the optimizer step.

A training checkpoint records, next to the weights, the epochs done (``epoch_num``), the
optimizer steps done in the epoch in progress (``step_in_epoch``; 0 at an epoch's end), the
optimizer steps per epoch, the device count, the per-device batch and the accumulation steps
(``common.checkpoint.TRAINING_COUNTERS``).

The lr schedule is rebuilt for this run and indexed by the optimizer's ``global_step``, so on
resume that step is set to where this run's schedule has reached the checkpoint's point:
``epochs done x this run's steps per epoch (+ the steps within)``. An epoch-end checkpoint
therefore resumes on any device count (the schedule continues at the next epoch); a mid-epoch
one only with the same devices, batch and accumulation, since only then is "step k of this
epoch" the same point of the data.
"""
import os

from common.errors import ConfigError, WeightsError


class ResumePoint:
    """epoch (whole epochs done), within (optimizer steps of the next epoch done), saved (counters)."""

    def __init__(self, epoch=0, within=0, saved=None):
        self.epoch, self.within, self.saved = int(epoch), int(within), dict(saved or {})


def read_resume_point(path, cfg, group_size):
    """The point ``--resume path`` continues from; a mid-epoch checkpoint of another device count,
    batch or accumulation is refused in one line."""
    from common.checkpoint import read_training_state
    if not os.path.isfile(path):
        raise WeightsError(f"resume checkpoint not found: {path}")
    saved = read_training_state(path)
    point = ResumePoint(saved["epoch_num"], saved.get("step_in_epoch", 0), saved)
    if point.epoch >= cfg.epoch_size:
        raise ConfigError(f"{path} already finished epoch {point.epoch} of {cfg.epoch_size}; "
                          f"raise --epoch_size to go on")
    if point.within:
        then = (saved.get("device_num"), saved.get("batch_size"), saved.get("gradient_accumulation_steps"))
        now = (group_size, cfg.batch_size, cfg.gradient_accumulation_steps)
        if then != now:
            raise ConfigError(f"{path} was saved mid-epoch (epoch {point.epoch + 1} step {point.within}) with "
                              f"{_setup(*then)}; this run has {_setup(*now)}: resume it with the same, or "
                              f"resume from an epoch-end checkpoint")
    return point


def _setup(devices, batch, accumulation):
    return f"{devices} device(s) x batch {batch} x {accumulation} accumulated"


def check_steps_per_epoch(point, path, steps):
    """A mid-epoch point must fall inside this run's epoch of ``steps`` optimizer steps."""
    saved = point.saved.get("steps_per_epoch")
    if point.within and (saved != steps or point.within >= steps):
        raise ConfigError(f"{path} was saved at step {point.within} of a {saved}-step epoch; this run's epoch has "
                          f"{steps} steps (another dataset?): resume from an epoch-end checkpoint")


def optimizer_step(point, steps):
    """This run's optimizer step at the resume point (``steps`` optimizer steps per epoch)."""
    return point.epoch * steps + point.within


def describe_mapping(point, steps, group_size):
    """One line when the checkpoint's epochs had another length than this run's (else '')."""
    saved_steps, saved_devices = point.saved.get("steps_per_epoch"), point.saved.get("device_num")
    if saved_steps in (None, steps):
        return ""
    return (f"the checkpoint's epochs had {saved_steps} steps on {saved_devices} device(s), this run's have {steps} "
            f"on {group_size}: the lr schedule continues at epoch {point.epoch + 1} (optimizer step "
            f"{optimizer_step(point, steps)})")
