"""The data-parallel tests find msrun beside the interpreter when PATH lacks it (a virtualenv used
without activating it), and fail, not skip, when it is nowhere (conftest.find_msrun / msrun_env)."""
import os
import sys

import pytest

from conftest import find_msrun, msrun_env


@pytest.fixture
def venv_without_path(tmp_path, monkeypatch):
    """An interpreter in tmp/venv/bin and a PATH that holds no msrun."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    return bin_dir


def test_msrun_beside_the_interpreter_is_found_and_put_on_path(venv_without_path):
    msrun = venv_without_path / "msrun"
    msrun.write_text("#!/bin/sh\n")
    msrun.chmod(0o755)
    assert find_msrun() == str(msrun)
    assert msrun_env(GLOG_v="3")["PATH"].split(os.pathsep)[0] == str(venv_without_path)


def test_no_msrun_anywhere_fails_the_test_naming_where_it_looked(venv_without_path):
    with pytest.raises(pytest.fail.Exception, match=f"neither on PATH nor in {venv_without_path}"):
        find_msrun()


def test_msrun_on_path_wins(venv_without_path, tmp_path, monkeypatch):
    on_path = tmp_path / "empty" / "msrun"
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    (venv_without_path / "msrun").write_text("#!/bin/sh\n")
    (venv_without_path / "msrun").chmod(0o755)
    assert find_msrun() == str(on_path)
