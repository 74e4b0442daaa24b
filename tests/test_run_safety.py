"""Issue 25's run-safety classes through the real entry points: config files that say less than they
seem, poisoned weights, two runs into one output folder, preemption (SIGTERM) and its resume.

Tiny runs: dla46_c, 32 px, digits, batch 8, PyNative."""
import textwrap

import pytest

from conftest import run_script

QUIET = {"GLOG_v": "3"}


def refused(proc, *needles, code=2):
    """Exit ``code``, no traceback, a last line ``error: ...`` naming every needle; returns that line."""
    assert proc.returncode == code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = [line for line in proc.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("error: "), last
    for needle in needles:
        assert str(needle) in last, (needle, last)
    return last


# --------------------------------------------------------------------------- config files
@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n# and another\n", "---\n"])
def test_an_empty_config_file_is_one_line(tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    proc = run_script("dla/train.py", "--config_path", path, "--output_dir", tmp_path / "o", check=False, env=QUIET)
    refused(proc, str(path), "is empty")
    assert not (tmp_path / "o").exists()


def test_a_key_written_twice_names_the_file_the_key_and_both_lines(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text(textwrap.dedent("""\
        model: dla46_c
        lr: 0.1
        # a comment between
        batch_size: 8
        lr: 0.01
        """))
    proc = run_script("dla/train.py", "--config_path", path, "--output_dir", tmp_path / "o", check=False, env=QUIET)
    refused(proc, str(path), "'lr' twice", "lines 2 and 5")
    assert not (tmp_path / "o").exists()
