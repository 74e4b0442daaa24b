import os
import shutil
import subprocess
import sys
from pathlib import Path

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


def _in_mode(name):
    """MindSpore's execution mode ``name`` for one test, the previous mode restored after it."""
    import mindspore as ms
    previous = ms.get_context("mode")
    ms.set_context(mode=getattr(ms, name))
    yield
    ms.set_context(mode=previous)


@pytest.fixture(autouse=True)
def _restore_mindspore_mode():
    """MindSpore's execution mode is process-wide: a test (or an entry point it runs in-process) that
    sets it must not decide how the next test runs. Put back after each test as it was at its start
    (module-scoped fixtures, set up before, keep theirs). Imports nothing: without MindSpore loaded
    there is no mode to keep."""
    ms = sys.modules.get("mindspore")
    before = ms.get_context("mode") if ms is not None else None
    yield
    ms = sys.modules.get("mindspore")
    if ms is not None:
        ms.set_context(mode=ms.PYNATIVE_MODE if before is None else before)  # PYNATIVE: a fresh process's


@pytest.fixture
def graph_mode():
    yield from _in_mode("GRAPH_MODE")


@pytest.fixture
def pynative_mode():
    yield from _in_mode("PYNATIVE_MODE")


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


def run_script(*args, cwd=ROOT, timeout=900, env=None, check=True):
    """Run a repo script with this interpreter the way the README does; returns CompletedProcess."""
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=full_env, timeout=timeout,
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\n"
                             f"stderr:\n{proc.stderr[-4000:]}")
    return proc
