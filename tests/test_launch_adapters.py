"""common/adapters: rank/device from the launcher's environment; ModelArts copies with moxing.

moxing exists only on ModelArts; a stand-in module in sys.modules records the copies.
"""
import importlib
import sys
import types
from types import SimpleNamespace

import pytest

import common  # noqa: F401  (CPU fast path first)
from common.adapters import get_device_id, get_device_num, get_job_id, get_rank_id, moxing_wrapper, sync_data
from common.adapters import moxing_adapter
from common.errors import UserError

LAUNCH_ENV = ("DEVICE_ID", "RANK_ID", "RANK_SIZE", "JOB_ID", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_RANK",
              "OMPI_COMM_WORLD_SIZE", "MS_NODE_ID", "MS_WORKER_NUM")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in LAUNCH_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(moxing_adapter.LOCK_DIR_ENV, str(tmp_path / "locks"))
    (tmp_path / "locks").mkdir()
    monkeypatch.setattr(moxing_adapter, "_SYNC_COUNT", [0])


@pytest.fixture
def fake_moxing(monkeypatch):
    """A stand-in ``moxing`` whose file.copy_parallel records (from, to)."""
    calls = []
    mox = types.ModuleType("moxing")
    mox.file = SimpleNamespace(copy_parallel=lambda src, dst: calls.append((src, dst)))
    monkeypatch.setitem(sys.modules, "moxing", mox)
    return calls


def test_single_process_defaults():
    assert (get_device_id(), get_device_num(), get_rank_id(), get_job_id()) == (0, 1, 0, "default")


def test_ascend_script_environment(monkeypatch):
    """What scripts/run_distribute_train.sh exports for device 5 of 8 (and ModelArts' JOB_ID)."""
    for k, v in {"DEVICE_ID": "5", "RANK_ID": "5", "RANK_SIZE": "8", "JOB_ID": "job42"}.items():
        monkeypatch.setenv(k, v)
    assert (get_device_id(), get_device_num(), get_rank_id(), get_job_id()) == (5, 8, 5, "job42")


def test_mpirun_and_msrun_environment(monkeypatch):
    for k, v in {"OMPI_COMM_WORLD_LOCAL_RANK": "2", "OMPI_COMM_WORLD_RANK": "10", "OMPI_COMM_WORLD_SIZE": "16"}.items():
        monkeypatch.setenv(k, v)
    assert (get_device_id(), get_device_num(), get_rank_id()) == (2, 16, 10)
    for k in ("OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(k)
    monkeypatch.setenv("MS_NODE_ID", "1")
    monkeypatch.setenv("MS_WORKER_NUM", "2")
    assert (get_device_num(), get_rank_id()) == (2, 1)


def test_disabled_calls_the_function_as_is(monkeypatch):
    """Off ModelArts nothing is copied and moxing is never imported (it would fail)."""
    monkeypatch.setitem(sys.modules, "moxing", None)
    cfg = {"enable_modelarts": False, "data_url": "obs://bucket/data", "data_path": "/cache/data"}
    seen = []
    run = moxing_wrapper(cfg)(lambda a, b=0: seen.append((a, b)) or "done")
    assert run(1, b=2) == "done" and seen == [(1, 2)]


@pytest.mark.parametrize("flag", [True, "True", "true"])
def test_enabled_copies_data_before_and_outputs_after(fake_moxing, tmp_path, flag):
    out = tmp_path / "output"
    cfg = SimpleNamespace(enable_modelarts=flag, data_url="obs://bucket/digits", data_path="/cache/data",
                          train_url="obs://bucket/job1", output_dir=str(out))
    order = []

    def pre():
        order.append(("pre", list(fake_moxing)))

    def post():
        order.append(("post", list(fake_moxing)))

    def run(cfg_arg):
        assert cfg_arg is cfg and out.is_dir(), "output_dir exists when the run starts"
        order.append(("run", list(fake_moxing)))
        return 7

    assert moxing_wrapper(cfg, pre_process=pre, post_process=post)(run)(cfg) == 7
    download = ("obs://bucket/digits", "/cache/data")
    assert order == [("pre", [download]), ("run", [download]), ("post", [download])]
    assert fake_moxing == [download, (str(out), "obs://bucket/job1")]


def test_enabled_without_urls_copies_nothing(fake_moxing):
    cfg = {"enable_modelarts": True, "data_url": "", "data_path": "/cache/data", "train_url": "", "output_dir": ""}
    assert moxing_wrapper(cfg)(lambda: 3)() == 3
    assert fake_moxing == []


def test_enabled_without_moxing_stops_with_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "moxing", None)  # makes `import moxing` raise ImportError
    ran = []
    cfg = {"enable_modelarts": True, "data_url": "obs://b/d", "data_path": "/cache/data"}
    with pytest.raises(UserError) as exc:  # run_main prints it as one line and exits 2
        moxing_wrapper(cfg)(lambda: ran.append(1))()
    assert ran == []
    message = str(exc.value)
    assert "\n" not in message and "enable_modelarts" in message and "'moxing'" in message


def test_works_with_the_engine_config(fake_moxing):
    config = importlib.import_module("common.config")
    cfg = config.Config(enable_modelarts=True, data_url="obs://b/d", data_path="/cache/d", train_url="",
                        output_dir="")
    moxing_wrapper(cfg)(lambda: None)()
    assert fake_moxing == [("obs://b/d", "/cache/d")]


@pytest.mark.parametrize("device_id, rank_size, copies", [
    (0, 1, True), (0, 8, True), (3, 8, False), (8, 16, True), (9, 16, False), (1, 2, False)])
def test_one_device_per_server_copies(monkeypatch, fake_moxing, tmp_path, device_id, rank_size, copies):
    """Device 0 of each 8-device server copies; the others only wait for its lock file."""
    monkeypatch.setenv("DEVICE_ID", str(device_id))
    monkeypatch.setenv("RANK_SIZE", str(rank_size))
    monkeypatch.setenv("JOB_ID", "j1")
    if not copies:  # the copying device has finished already
        (tmp_path / "locks" / "copy_sync_j1_0.lock").touch()
    sync_data("obs://b/d", "/cache/d", timeout=5, poll=0.01)
    assert fake_moxing == ([("obs://b/d", "/cache/d")] if copies else [])
    assert (tmp_path / "locks" / "copy_sync_j1_0.lock").exists()


def test_waiting_device_gives_up_with_one_line(monkeypatch, fake_moxing):
    monkeypatch.setenv("DEVICE_ID", "1")
    monkeypatch.setenv("RANK_SIZE", "8")
    with pytest.raises(UserError, match="waited .* for the copy obs://b/d"):
        sync_data("obs://b/d", "/cache/d", timeout=0.05, poll=0.01)
    assert fake_moxing == []


def test_each_copy_has_its_own_lock(fake_moxing, tmp_path):
    sync_data("obs://b/1", "/cache/1")
    sync_data("obs://b/2", "/cache/2")
    assert fake_moxing == [("obs://b/1", "/cache/1"), ("obs://b/2", "/cache/2")]
    assert sorted(p.name for p in (tmp_path / "locks").iterdir()) == ["copy_sync_default_0.lock",
                                                                      "copy_sync_default_1.lock"]


@pytest.mark.parametrize("family", ["dla", "peleenet", "multigrain"])
def test_model_utils_reexport_the_shared_adapters(family):
    utils = importlib.import_module(f"{family}.model_utils")
    assert utils.moxing_wrapper is moxing_wrapper and utils.get_rank_id is get_rank_id
    assert set(utils.__all__) >= {"moxing_wrapper", "get_device_id", "get_device_num", "get_rank_id", "get_job_id"}


@pytest.fixture
def copying_moxing(monkeypatch):
    """A stand-in ``moxing`` that really copies (local folders stand for OBS) and records each copy."""
    import shutil
    calls = []

    def copy_parallel(src, dst):
        calls.append(("copy_parallel", src, dst))
        shutil.copytree(src, dst, dirs_exist_ok=True)

    def copy(src, dst):
        calls.append(("copy", src, dst))
        shutil.copyfile(src.replace("obs://", "/", 1) if src.startswith("obs://") else src, dst)

    mox = types.ModuleType("moxing")
    mox.file = SimpleNamespace(copy_parallel=copy_parallel, copy=copy)
    monkeypatch.setitem(sys.modules, "moxing", mox)
    return calls


def _modelarts_cfg(tmp_path, **kw):
    config = importlib.import_module("common.config")
    base = dict(enable_modelarts=True, data_url="", data_path="", train_url="", output_dir="",
                load_path=str(tmp_path / "cache" / "ckpt"), checkpoint_url="", pretrained="", resume="")
    return config.Config(base, **kw)


def test_checkpoint_url_folder_is_copied_before_the_run_and_resume_names_a_file_in_it(copying_moxing, tmp_path):
    bucket = tmp_path / "bucket" / "run1"
    bucket.mkdir(parents=True)
    (bucket / "dla34-40_5004.ckpt").write_bytes(b"weights")
    cfg = _modelarts_cfg(tmp_path, checkpoint_url=str(bucket), resume="dla34-40_5004.ckpt")
    seen = []
    moxing_wrapper(cfg)(lambda c: seen.append((c.resume, open(c.resume, "rb").read())))(cfg)
    local = str(tmp_path / "cache" / "ckpt" / "dla34-40_5004.ckpt")
    assert seen == [(local, b"weights")], "the run starts with the copy in place and --resume pointing at it"
    assert copying_moxing == [("copy_parallel", str(bucket), str(tmp_path / "cache" / "ckpt"))]


def test_checkpoint_url_file_and_an_obs_pretrained_are_copied_one_file_each(copying_moxing, tmp_path):
    (tmp_path / "bucket").mkdir()
    (tmp_path / "bucket" / "a.ckpt").write_bytes(b"A")
    (tmp_path / "bucket" / "b.pdparams").write_bytes(b"B")
    obs_b = "obs://" + str(tmp_path / "bucket" / "b.pdparams").lstrip("/")
    cfg = _modelarts_cfg(tmp_path, checkpoint_url=str(tmp_path / "bucket" / "a.ckpt"), pretrained=obs_b)
    moxing_wrapper(cfg)(lambda: None)()
    cache = tmp_path / "cache" / "ckpt"
    assert cfg.pretrained == str(cache / "b.pdparams") and (cache / "b.pdparams").read_bytes() == b"B"
    assert (cache / "a.ckpt").read_bytes() == b"A" and cfg.resume == ""
    assert [c[0] for c in copying_moxing] == ["copy", "copy"]


def test_without_modelarts_checkpoint_paths_are_left_alone(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "moxing", None)
    cfg = _modelarts_cfg(tmp_path, checkpoint_url="obs://b/x.ckpt", resume="obs://b/x.ckpt")
    cfg.enable_modelarts = False
    moxing_wrapper(cfg)(lambda: None)()
    assert cfg.resume == "obs://b/x.ckpt"
