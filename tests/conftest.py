import ast
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")


@pytest.fixture(scope="session")
def repo_root():
    return ROOT


@pytest.fixture(scope="session")
def fixtures_dir():
    if not FIXTURES.is_dir():
        pytest.skip(f"reference fixtures not found at {FIXTURES}")
    return FIXTURES


def _set_mode(name):
    import mindspore as ms
    ms.set_context(mode=getattr(ms, name))


@pytest.fixture(autouse=True)
def _pynative_after_each_test():
    """MindSpore's execution mode is process-wide: a test (or an entry point it runs in-process) that set
    GRAPH_MODE decided how every later test ran (single forwards compiled as graphs, 5x slower; the README
    backbone example failed after test_dla_models). Every test starts in PyNative, a fresh process's mode;
    tests that mean GRAPH ask for ``graph_mode``. Imports nothing: the import-light tests check what loads."""
    yield
    ms = sys.modules.get("mindspore")
    if ms is not None and ms.get_context("mode") != ms.PYNATIVE_MODE:
        ms.set_context(mode=ms.PYNATIVE_MODE)


@pytest.fixture
def graph_mode():
    """GRAPH_MODE for one test (PyNative, MindSpore's default, is back after it)."""
    _set_mode("GRAPH_MODE")


@pytest.fixture
def pynative_mode():
    """PYNATIVE_MODE, said explicitly where a test is about it."""
    _set_mode("PYNATIVE_MODE")


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    """The digits demo dataset (32 px), built once per test session."""
    out = tmp_path_factory.mktemp("digits")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_demo_data.py"), str(out)], check=True)
    return out


def find_msrun():
    """MindSpore's ``msrun`` launcher: on PATH, else beside this interpreter (where pip put it when the
    virtualenv was not activated). Fails the test when it is in neither: a data-parallel test that
    silently skips leaves the suite green without having run it."""
    beside = os.path.dirname(sys.executable)
    found = shutil.which("msrun") or shutil.which("msrun", path=beside)
    if found is None:
        pytest.fail(f"msrun (MindSpore's launcher, installed with mindspore) is neither on PATH nor in {beside}: "
                    "install mindspore for this interpreter, or put its scripts folder on PATH", pytrace=False)
    return found


def msrun_env(**extra):
    """``os.environ`` (plus ``extra``) with msrun's folder first on PATH: the launch scripts call it by name."""
    env = dict(os.environ, **extra)
    env["PATH"] = os.path.dirname(find_msrun()) + os.pathsep + env.get("PATH", "")
    return env


@pytest.fixture(scope="session")
def peleenet_demo(demo_data, tmp_path_factory):
    """PeleeNet trained once per session the way config/peleenet_demo_config.yaml's header says (image
    folders, 8 epochs, eval every epoch, ckpt/best.ckpt kept). The accuracy test and the
    train -> eval -> export -> predict chain both use this run: they trained the same net on the same digits."""
    out = tmp_path_factory.mktemp("peleenet_demo")
    proc = run_script("peleenet/train.py", "--config_path", "config/peleenet_demo_config.yaml", "--data_path",
                      demo_data, "--output_dir", out, timeout=1800)
    return SimpleNamespace(out=out, stdout=proc.stdout, best=out / "ckpt" / "best.ckpt")


@pytest.fixture(scope="session")
def dla_finetuned(demo_data, fixtures_dir, tmp_path_factory):
    """dla46_c finetuned once per session from PaddleClas's ImageNet .pdparams (1000 classes) to the 10
    digits: 2 epochs at 32 px, no eval during training, then eval.py on the last checkpoint (~0.78
    top-1: predictions decided, not chance). test_paddle_finetune asserts on the run; test_exported_eval
    scores exports of its checkpoint against its eval."""
    out = tmp_path_factory.mktemp("dla_finetuned")
    data = ["--config_path", "config/dla_demo_config.yaml", "--data_path", demo_data, "--image_size", "32"]
    train = run_script("dla/train.py", *data, "--epoch_size", "2", "--lr", "0.05", "--eval_during_train", "False",
                       "--pretrained", fixtures_dir / "paddleclas_dla46_c.pdparams", "--output_dir", out,
                       "--keep_checkpoint_max", "1", timeout=1800)
    ckpt = next((out / "ckpt").glob("dla46_c-2_*.ckpt"))
    metrics, path = eval_result(run_script("dla/eval.py", *data, "--ckpt_file", ckpt).stdout)
    assert path == str(ckpt)
    return SimpleNamespace(ckpt=ckpt, log=train.stdout + train.stderr, metrics=metrics)


def eval_result(stdout):
    """(metrics dict, model file) of eval.py's ModelZoo line ``result: {...} ckpt= PATH``."""
    line = next(l for l in stdout.splitlines() if l.startswith("result: "))
    metrics, path = line[len("result: "):].split(" ckpt= ")
    return ast.literal_eval(metrics), path


def load_script(relative):
    """A shipped script (``scripts/x.py``, ``tools/x.py``: not a package module) imported from its file,
    a fresh module each call."""
    import importlib.util
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(*args, cwd=ROOT, timeout=900, env=None, check=True):
    """Run a repo script with this interpreter the way the README does; returns CompletedProcess."""
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=full_env, timeout=timeout,
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\n"
                             f"stderr:\n{proc.stderr[-4000:]}")
    return proc


# --------------------------------------------------------------------------- two workers (pytest-xdist)
# pytest.ini runs the suite on two pytest-xdist workers (-n 2 --dist loadgroup): much of a test's time is
# one-threaded (interpreter start-up, graph compilation, data decoding), so two run side by side on 2 cores.
SHARED_RUNS = ("peleenet_demo", "dla_finetuned")  # session fixtures that train: their tests share a worker
_TURNS = pytest.StashKey()


def pytest_configure(config):
    if hasattr(config, "workerinput"):  # an xdist worker; its basetemp is <the run's basetemp>/popen-gwN
        config.stash[_TURNS] = _Turns(os.path.join(os.path.dirname(str(config.option.basetemp)), "alone"))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    """On an xdist worker: the tests of one of SHARED_RUNS go to one worker (it trains once), and so do the
    tests of a module with a module-scoped fixture (set up once); modules with slow tests are handed out
    first, so that no long test starts last."""
    if not hasattr(config, "workerinput"):
        return
    for item in items:
        group = next((name for name in SHARED_RUNS if name in item.fixturenames), None)
        if group is None and _has_module_fixture(item):
            group = item.module.__name__
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow_modules)  # stable: modules stay contiguous


def _has_module_fixture(item):
    defs = getattr(item, "_fixtureinfo", None)  # pytest's record of the fixtures an item uses
    return defs is not None and any(d[-1].scope in ("module", "package") for d in defs.name2fixturedefs.values())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """A test marked ``alone`` (setup, call, teardown) runs while the other worker waits between two tests."""
    turns = item.config.stash.get(_TURNS, None)
    if turns is None:
        yield
        return
    with turns(item.get_closest_marker("alone") is not None):
        yield


class _Turns:
    """A readers-writer lock between the workers of one run (flock): an ``alone`` test holds ``room``
    exclusively, any other test shared. ``gate`` is a turnstile: a waiting ``alone`` test holds it, so the
    other worker's next test queues behind it instead of starving it with back-to-back shared locks."""

    def __init__(self, base):
        self.gate, self.room = open(base + ".gate", "a"), open(base + ".room", "a")

    @contextmanager
    def __call__(self, alone):
        import fcntl
        fcntl.flock(self.gate, fcntl.LOCK_EX)
        if not alone:
            fcntl.flock(self.gate, fcntl.LOCK_UN)
        fcntl.flock(self.room, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        if alone:
            fcntl.flock(self.gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(self.room, fcntl.LOCK_UN)
