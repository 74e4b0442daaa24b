"""Where a run writes: refuse to mix a new training run into an earlier run's output folder, and
turn folders that cannot be created into one line.

Why refuse rather than open a fresh run folder (timm's ``output/train/<date>-<model>``): the
ModelZoo layout, our scripts and the README name fixed paths (``output_dir/ckpt/best.ckpt``), and
a run that silently went somewhere else is as confusing as one that overwrote. So training again
into a folder that already holds checkpoints stops before anything is written, naming the folder
and the ways out (``--resume`` to continue that run, another ``--output_dir`` for a new one).
"""
import glob
import os
import re

from common.errors import OutputError, describe_os_error


def checkpoint_dirs(out_dir):
    """``ckpt`` (one device) and ``ckpt_<rank>`` (distributed) folders under ``out_dir``."""
    return [d for d in [os.path.join(out_dir, "ckpt"), *sorted(glob.glob(os.path.join(out_dir, "ckpt_*")))]
            if os.path.isdir(d)]


def check_new_training_run(out_dir, resume=""):
    """Before a training run writes anything: ``out_dir`` must be a folder we can create, and must
    not hold an earlier run's checkpoints unless this run continues that run (``--resume`` of a
    checkpoint inside ``out_dir``)."""
    check_output_dir(out_dir)
    if resume and os.path.abspath(resume).startswith(os.path.abspath(out_dir) + os.sep):
        return
    earlier = sorted(p for d in checkpoint_dirs(out_dir) for p in glob.glob(os.path.join(d, "*.ckpt")))
    if earlier:
        # periodic checkpoints (<model>-<epoch>_<step>.ckpt) hold the optimizer state --resume needs
        periodic = [p for p in earlier
                    if re.search(r"-\d+_\d+\.ckpt$", p) and not os.path.basename(p).startswith("ema-")]
        resume_hint = f"continue it with --resume {max(periodic, key=os.path.getmtime)}, or " if periodic else ""
        raise OutputError(f"{out_dir} holds an earlier run's {len(earlier)} checkpoint(s); nothing was changed: "
                          f"{resume_hint}start a new run with another --output_dir")


def check_output_dir(path):
    """``path`` is a folder, or can be made one (its nearest existing parent is a writable folder)."""
    path = os.path.abspath(path)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise OutputError(f"output folder {path} is a file; pass another --output_dir")
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputError(f"output folder {path} is not writable; pass another --output_dir")
        return
    parent = os.path.dirname(path)
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise OutputError(f"cannot create output folder {path}: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create output folder {path}: {parent} is not writable")


def make_output_dir(path):
    """``os.makedirs(path, exist_ok=True)`` with one-line errors."""
    check_output_dir(path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create output folder {path}: {describe_os_error(err)}") from None
    return path
