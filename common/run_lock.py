"""One training run per output folder: an exclusive lock file held for the run's life.

Two runs into one ``output_dir`` (a job resubmitted, a launcher started twice) would both pass the
earlier-run check (``common.outputs``), write the same checkpoint names and leave one run's weights
under the other's name. So a training run first creates ``output_dir/.train.lock`` with ``O_EXCL``
(atomic, also on NFS v3+ and Lustre) holding its pid, host and start time, and removes it when it
ends, however it ends; a second run stops in one line naming the holder.

Distributed runs: every rank shares ``output_dir``, so each rank locks its own name (rank 0
``.train.lock``, rank N ``.train.rank<N>.lock``; the rank from the launcher's environment, known
before any communication starts). A second job into the folder is refused on every one of its
ranks at once (none waits in a collective for a rank that left), and a standalone run conflicts
with a job's rank 0. Ranks on several hosts need the folder on a shared file system, as the
checkpoints already do. ModelArts: ``output_dir`` is a local folder copied to ``train_url`` after
the run, so the lock guards that container's folder; it is removed before the copy and never
reaches OBS (OBS has no exclusive create: two jobs with one ``train_url`` are not detected).

A lock left by a process that died without removing it (kill -9, power loss) is taken over with
a warning when its holder was on this host and is gone; a lock from another host is never taken
over (we cannot see its processes): the refusal says which file to delete.
"""
import contextlib
import datetime
import json
import logging
import os
import socket

from common.errors import OutputError

_logger = logging.getLogger(__name__)
_HELD = set()  # lock files this process holds


def lock_path(out_dir, rank=0):
    return os.path.join(out_dir, ".train.lock" if not rank else f".train.rank{rank}.lock")


@contextlib.contextmanager
def output_lock(out_dir, rank=0):
    """Hold ``out_dir``'s lock (creating the folder if needed) for the ``with`` block; a folder this
    created is removed again when the run left nothing in it (a refused run leaves no trace)."""
    from common.outputs import make_output_dir
    created = not os.path.isdir(out_dir)
    make_output_dir(out_dir)
    path = lock_path(out_dir, rank)
    _acquire(path, out_dir)
    try:
        yield path
    finally:
        _HELD.discard(path)
        with contextlib.suppress(OSError):
            os.remove(path)
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(out_dir)  # only when empty


def release_all():
    """Remove this process's locks (before ``os._exit``, which skips the ``finally`` blocks)."""
    for path in list(_HELD):
        with contextlib.suppress(OSError):
            os.remove(path)
        _HELD.discard(path)


def _acquire(path, out_dir):
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "start": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    for _ in range(3):  # a stale lock taken over, then created anew
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _read(path)
            if not _stale(path, holder, me):
                raise OutputError(_refusal(out_dir, path, holder, me)) from None
            _take_over(path, holder)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(me, f)
        _HELD.add(path)
        return
    raise OutputError(f"{out_dir} is in use by another training run: {path} keeps reappearing; "
                      f"pass another --output_dir")


def _read(path):
    """The holder recorded in ``path`` ({} when unreadable: a run between creating and filling it)."""
    try:
        with open(path, encoding="utf-8") as f:
            holder = json.load(f)
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def _stale(path, holder, me):
    """The holder ran on this host and is gone (or it is this process's pid from an earlier life:
    a restarted container reuses low pids)."""
    if holder.get("host") != me["host"] or not isinstance(holder.get("pid"), int):
        return False
    if holder["pid"] == me["pid"]:
        return path not in _HELD
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _take_over(path, holder):
    """Remove the stale ``path``: renamed away first, so of two runs taking over only one removes it,
    and a fresh lock another run made in the meantime is put back."""
    aside = f"{path}.stale.{os.getpid()}"
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another run removed it first: try to create ours
    if _read(aside) != holder:  # not the stale one: another run's fresh lock; give it back
        with contextlib.suppress(OSError):
            os.link(aside, path)
        os.remove(aside)
        return
    os.remove(aside)
    _logger.warning("taking over %s: its run (pid %s on %s, started %s) is no longer running", path,
                    holder.get("pid"), holder.get("host"), holder.get("start"))


def _refusal(out_dir, path, holder, me):
    if not holder:
        return (f"{out_dir} is in use by another training run ({path} exists): if no run uses it, delete {path}; "
                f"else pass another --output_dir")
    who = f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('start')}"
    if holder.get("host") != me["host"]:
        return (f"{out_dir} is in use by another training run ({who}); a lock from another host is never taken "
                f"over: if that run has ended, delete {path}; else pass another --output_dir")
    return f"{out_dir} is in use by another training run ({who}); wait for it to end or pass another --output_dir"
