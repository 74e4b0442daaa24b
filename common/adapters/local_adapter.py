"""Rank and device of this process, from the launcher's environment (no MindSpore needed).

Ascend scripts set DEVICE_ID / RANK_ID / RANK_SIZE; msrun sets the same names; mpirun sets
OMPI_COMM_WORLD_*; ModelArts sets JOB_ID. Unset means a single process on device 0.
"""
import os


def _env_int(*names, default=0):
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return int(value)
    return default


def get_device_id():
    """Device of this process: DEVICE_ID, else the local rank under mpirun, else 0."""
    return _env_int("DEVICE_ID", "OMPI_COMM_WORLD_LOCAL_RANK")


def get_device_num():
    """Number of processes in the job (RANK_SIZE, mpirun's or msrun's world size), else 1."""
    return _env_int("RANK_SIZE", "OMPI_COMM_WORLD_SIZE", "MS_WORKER_NUM", default=1)


def get_rank_id():
    """Global rank of this process (RANK_ID, mpirun's or msrun's rank), else 0."""
    return _env_int("RANK_ID", "OMPI_COMM_WORLD_RANK", "MS_NODE_ID")


def get_job_id():
    """ModelArts' JOB_ID, or 'default' outside ModelArts."""
    return os.environ.get("JOB_ID", "").strip() or "default"
