"""ModelZoo ``model_utils`` adapters, shared by every model: the process's rank/device from the
environment (local) and ModelArts' OBS copies (moxing). Model folders re-export these."""
from common.adapters.local_adapter import get_device_id, get_device_num, get_job_id, get_rank_id
from common.adapters.moxing_adapter import moxing_wrapper, sync_data

__all__ = ["get_device_id", "get_device_num", "get_job_id", "get_rank_id", "moxing_wrapper", "sync_data"]
