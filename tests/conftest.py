import os
import subprocess
import sys
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


def _in_mode(name):
    """MindSpore's execution mode ``name`` for one test, the previous mode restored after it."""
    import mindspore as ms
    previous = ms.get_context("mode")
    ms.set_context(mode=getattr(ms, name))
    yield
    ms.set_context(mode=previous)


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


@pytest.fixture(scope="session")
def peleenet_demo(demo_data, tmp_path_factory):
    """PeleeNet trained once per session the way config/peleenet_demo_config.yaml's header says (image
    folders, 8 epochs, eval every epoch, ckpt/best.ckpt kept). The accuracy test and the
    train -> eval -> export -> predict chain both use this run: they trained the same net on the same digits."""
    out = tmp_path_factory.mktemp("peleenet_demo")
    proc = run_script("peleenet/train.py", "--config_path", "config/peleenet_demo_config.yaml", "--data_path",
                      demo_data, "--output_dir", out, timeout=1800)
    return SimpleNamespace(out=out, stdout=proc.stdout, best=out / "ckpt" / "best.ckpt")


def run_script(*args, cwd=ROOT, timeout=900, env=None, check=True):
    """Run a repo script with this interpreter the way the README does; returns CompletedProcess."""
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=full_env, timeout=timeout,
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\n"
                             f"stderr:\n{proc.stderr[-4000:]}")
    return proc
