"""ModelArts support: ``moxing_wrapper`` copies data from OBS before a run and outputs back after.

    def main(argv=None):
        cfg = parse_args(argv, DEFAULT_CONFIG)
        moxing_wrapper(cfg)(run)(cfg)

With ``cfg.enable_modelarts`` false the function is called as it is. With it true, ``data_url`` is
copied to ``data_path`` before the call and ``output_dir`` to ``train_url`` after it (both only
when the keys are set), using ``moxing``, which exists only on ModelArts: without it the run stops
with one line. One device per server copies (DEVICE_ID % min(RANK_SIZE, 8) == 0); the others wait
for its lock file, named after the job so that a stale lock of another job cannot be mistaken
for this one.

Checkpoints (as ModelZoo's ``checkpoint_url``/``load_path``): ``checkpoint_url`` (an OBS file or
folder) is copied to ``load_path`` before the run, and a ``pretrained``/``resume`` that is not a
local file then names a file in ``load_path``; a ``pretrained``/``resume`` given as an OBS path
(``obs://``, ``s3://``) is copied to ``load_path`` and replaced by the local copy.
"""
import functools
import os
import tempfile
import time
from collections.abc import Mapping

from common.errors import UserError
from common.adapters.local_adapter import get_device_id, get_device_num, get_job_id, get_rank_id

DEVICES_PER_SERVER = 8
CHECKPOINT_KEYS = ("pretrained", "resume")
REMOTE_PREFIXES = ("obs://", "s3://")
LOCK_DIR_ENV = "MOXING_LOCK_DIR"  # where lock files go (default: the system temp folder)
_SYNC_COUNT = [0]


def _get(cfg, key, default=None):
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def _truthy(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _import_moxing():
    try:
        import moxing  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise UserError("enable_modelarts is set but the 'moxing' package is not installed; it exists "
                        "only on ModelArts (run with --enable_modelarts False elsewhere)") from None
    return moxing


def sync_data(from_path, to_path, timeout=3600.0, poll=1.0, copy=None):
    """Copy ``from_path`` to ``to_path`` with moxing on the first device of each server; the
    other devices wait (at most ``timeout`` seconds) until it has finished. ``copy``: another
    copy function (one file) instead of moxing's folder copy."""
    mox = _import_moxing()
    lock = os.path.join(os.environ.get(LOCK_DIR_ENV) or tempfile.gettempdir(),
                        f"copy_sync_{get_job_id()}_{_SYNC_COUNT[0]}.lock")
    _SYNC_COUNT[0] += 1
    if get_device_id() % min(get_device_num(), DEVICES_PER_SERVER) == 0 and not os.path.exists(lock):
        print(f"copying {from_path} -> {to_path}", flush=True)
        (copy or mox.file.copy_parallel)(from_path, to_path)
        with open(lock, "w", encoding="utf-8"):
            pass
    deadline = time.monotonic() + timeout
    while not os.path.exists(lock):
        if time.monotonic() > deadline:
            raise UserError(f"waited {timeout:.0f} s for the copy {from_path} -> {to_path} (lock {lock})")
        time.sleep(poll)


def _set(cfg, key, value):
    if isinstance(cfg, Mapping):
        cfg[key] = value
    else:
        setattr(cfg, key, value)


def _copy_file(from_path, to_path):
    """moxing's copy of one file (copy_parallel copies folders)."""
    _import_moxing().file.copy(from_path, to_path)


def fetch_checkpoints(cfg):
    """Copy ``checkpoint_url`` and OBS ``pretrained``/``resume`` paths to ``load_path``; point
    ``pretrained``/``resume`` at the local files."""
    load_path = _get(cfg, "load_path") or "/cache/checkpoint_path"
    url = _get(cfg, "checkpoint_url")
    if url:
        os.makedirs(load_path, exist_ok=True)
        name = os.path.basename(url.rstrip("/"))
        if os.path.splitext(name)[1]:  # a file: into load_path under its own name
            sync_data(url, os.path.join(load_path, name), copy=_copy_file)
        else:
            sync_data(url, load_path)
    for key in CHECKPOINT_KEYS:
        value = _get(cfg, key) or ""
        if value.startswith(REMOTE_PREFIXES):
            local = os.path.join(load_path, os.path.basename(value.rstrip("/")))
            os.makedirs(load_path, exist_ok=True)
            sync_data(value, local, copy=_copy_file)
            _set(cfg, key, local)
        elif url and value and not os.path.exists(value):
            _set(cfg, key, os.path.join(load_path, value))


def moxing_wrapper(cfg, pre_process=None, post_process=None):
    """Decorator: ModelArts data download before and output upload after the wrapped function."""
    def decorator(run_func):
        @functools.wraps(run_func)
        def wrapped(*args, **kwargs):
            modelarts = _truthy(_get(cfg, "enable_modelarts", False))
            if modelarts:
                _import_moxing()
                if _get(cfg, "data_url") and _get(cfg, "data_path"):
                    sync_data(_get(cfg, "data_url"), _get(cfg, "data_path"))
                fetch_checkpoints(cfg)
                output_dir = _get(cfg, "output_dir")
                if output_dir:
                    os.makedirs(output_dir, exist_ok=True)
                if pre_process:
                    pre_process()
            result = run_func(*args, **kwargs)
            if modelarts:
                if post_process:
                    post_process()
                if _get(cfg, "train_url") and _get(cfg, "output_dir"):
                    sync_data(_get(cfg, "output_dir"), _get(cfg, "train_url"))
            return result
        return wrapped
    return decorator


__all__ = ["moxing_wrapper", "sync_data", "get_device_id", "get_device_num", "get_rank_id", "get_job_id"]
