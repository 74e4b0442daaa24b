"""Issue 25's run-safety classes through the real entry points: config files that say less than they
seem, poisoned weights, two runs into one output folder, preemption (SIGTERM) and its resume.

Tiny runs: dla46_c, 32 px, digits, batch 8, PyNative."""
import textwrap

import pytest

from conftest import run_script
from test_errors import refused, tiny  # noqa: F401  (the one-epoch config: dla46_c, 32 px, 16/8 digits, 2 steps)

ONE_EPOCH = ["--log_interval", "1", "--eval_during_train", "False"]  # tiny's evaluates and logs every 5 steps
QUIET = {"GLOG_v": "3"}


def _entry(task, argv, capsys):
    """``dla/<task>.py argv`` in this process: (exit code, stderr)."""
    from common.cli import main_for
    from conftest import ROOT
    with pytest.raises(SystemExit) as stop:
        main_for(str(ROOT / "dla" / f"{task}.py"))([str(a) for a in argv])
    return stop.value.code, capsys.readouterr().err


# --------------------------------------------------------------------------- config files
@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n# and another\n", "---\n"])
def test_an_empty_config_file_is_one_line(tmp_path, capsys, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    code, err = _entry("train", ["--config_path", path, "--output_dir", tmp_path / "o"], capsys)
    assert code == 2 and err.strip().splitlines()[-1].startswith(f"error: config error: {path} is empty"), err
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


# --------------------------------------------------------------------------- poisoned weights
POISONED = "level3.tree1.tree1.conv1.weight"  # a mid-network tensor: not the first the file holds


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory):
    """dla46_c (10 classes) saved with one NaN and one inf in ``POISONED``; also as a --resume file."""
    import numpy as np
    import mindspore as ms
    from common import create_model
    net = create_model("dla46_c", num_classes=10)
    param = net.parameters_dict()[POISONED]
    value = param.asnumpy().copy()
    value.flat[3], value.flat[7] = np.nan, np.inf
    param.set_data(ms.Tensor(value))
    folder = tmp_path_factory.mktemp("poisoned")
    ms.save_checkpoint(net, str(folder / "nan.ckpt"))
    ms.save_checkpoint(net, str(folder / "nan_train.ckpt"), append_dict={"epoch_num": 0, "step_num": 0})
    return folder


@pytest.mark.parametrize("task, extra", [
    ("eval", ["--ckpt_file", "nan.ckpt"]),
    ("train", ["--pretrained", "nan.ckpt"]),
    ("train", ["--resume", "nan_train.ckpt"]),
    ("export", ["--ckpt_file", "nan.ckpt"]),
    ("export", ["--ckpt_file", "nan.ckpt", "--export_head", "features"]),  # backbone mode
    ("predict", ["--ckpt_file", "nan.ckpt"]),
], ids=["eval", "pretrained", "resume", "export", "backbone", "predict"])
def test_nan_weights_are_one_line_on_every_path_that_loads_weights(tiny, poisoned, demo_data, tmp_path, capsys,
                                                                    task, extra):
    extra = [str(poisoned / e) if e.endswith(".ckpt") else e for e in extra]
    image = next((demo_data / "val").rglob("*.png"))
    argv = ["--config_path", tiny, *ONE_EPOCH, "--output_dir", tmp_path / "out", *extra]
    argv += ["--predict_path", image] if task == "predict" else []
    code, err = _entry(task, argv, capsys)
    assert code == 2, err[-2000:]
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last.startswith("error: ") and extra[1] in last and f"tensor {POISONED} holds NaN/inf (2 of" in last, last
    assert not (tmp_path / "out" / "ckpt").exists() and not (tmp_path / "out" / "config.yaml").exists()


def test_a_foreign_file_of_another_architecture_names_the_file_and_the_model(tiny, fixtures_dir, tmp_path, capsys):
    """timm's dla46_c weights given to a dla34 eval: the line names the file and dla34 (a .ckpt's refusal
    already did: tests/test_recipe_train_e2e.py)."""
    path = fixtures_dir / "timm_dla46_c.safetensors"
    code, err = _entry("eval", ["--config_path", tiny, "--model", "dla34", "--num_classes", "1000",
                                "--ckpt_file", path], capsys)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith(f"error: {path} does not fit a dla34 model — "), err[-2000:]


# --------------------------------------------------------------------------- two runs into one folder
def _ckpt_state(path):
    import mindspore as ms
    return {k: v.asnumpy() for k, v in ms.load_checkpoint(str(path)).items()}


@pytest.mark.slow
def test_a_second_run_into_a_folder_in_use_is_refused_and_the_first_run_is_intact(tiny, tmp_path):
    """Run A holds out/.train.lock; run B into the same folder, started while A trains, stops in one line
    naming A (pid, host, start) and writes nothing; A's checkpoint equals a solo run's, tensor for tensor."""
    import socket
    import subprocess
    import sys
    import time
    import numpy as np
    from conftest import ROOT
    args = ["--config_path", str(tiny), *ONE_EPOCH, "--deterministic", "True", "--seed", "7"]
    out = tmp_path / "shared"
    first = subprocess.Popen([sys.executable, str(ROOT / "dla" / "train.py"), *args, "--output_dir", str(out)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**__import__("os").environ, **QUIET})
    lock = out / ".train.lock"
    deadline = time.time() + 120
    while not lock.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert lock.exists(), first.communicate()[1][-3000:]
    second = run_script("dla/train.py", *args, "--output_dir", out, check=False, env=QUIET)
    stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr[-3000:]
    refused(second, f"{out} is in use by another training run", f"pid {first.pid} on {socket.gethostname()}",
            "started ")
    assert not lock.exists()  # released at the end of A
    solo = run_script("dla/train.py", *args, "--output_dir", tmp_path / "solo", env=QUIET)
    assert solo.returncode == 0
    (got,), (want,) = list((out / "ckpt").glob("*.ckpt")), list((tmp_path / "solo" / "ckpt").glob("*.ckpt"))
    assert got.name == want.name
    got, want = _ckpt_state(got), _ckpt_state(want)
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def _dead_pid():
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_lock_of_a_dead_run_on_this_host_is_taken_over_with_a_warning(tmp_path, caplog):
    import json
    import logging
    import socket
    from common.run_lock import output_lock
    lock = tmp_path / ".train.lock"
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "start": "2026-01-01T00:00:00"}))
    with caplog.at_level(logging.WARNING):
        with output_lock(str(tmp_path)):
            assert json.loads(lock.read_text())["pid"] == __import__("os").getpid()
    assert "is no longer running" in caplog.text and "2026-01-01T00:00:00" in caplog.text
    assert not lock.exists()


def test_a_lock_from_another_host_is_never_taken_over(tiny, tmp_path, capsys):
    import json
    out = tmp_path / "out"
    out.mkdir()
    lock = out / ".train.lock"
    text = json.dumps({"pid": _dead_pid(), "host": "node-elsewhere", "start": "2026-01-01T00:00:00"})
    lock.write_text(text)
    code, err = _entry("train", ["--config_path", tiny, *ONE_EPOCH, "--output_dir", out], capsys)
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert "on node-elsewhere, started 2026-01-01T00:00:00" in last and f"delete {lock}" in last, last
    assert lock.read_text() == text and sorted(p.name for p in out.iterdir()) == [".train.lock"]


# --------------------------------------------------------------------------- preemption
@pytest.mark.slow
def test_sigterm_mid_epoch_saves_a_checkpoint_whose_resume_ends_like_an_uninterrupted_run(tiny, demo_data, tmp_path):
    """One epoch of 3 steps; SIGTERM once step 1 is logged: the run saves at a step boundary, prints the
    checkpoint and the --resume command, exits 143; that very command ends on the uninterrupted run's weights."""
    import os
    import shlex
    import signal
    import subprocess
    import sys
    import numpy as np
    from conftest import ROOT
    lines = (demo_data / "train_list.txt").read_text().splitlines()[:24]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    args = ["dla/train.py", "--config_path", str(tiny), *ONE_EPOCH, "--deterministic", "True", "--seed", "3",
            "--cls_label_path_train", str(tmp_path / "train.txt")]
    run = subprocess.Popen([sys.executable, *args, "--output_dir", str(tmp_path / "cut")], cwd=ROOT, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **QUIET})
    for line in run.stdout:
        if line.startswith("epoch: 1 step: 1/3"):
            run.send_signal(signal.SIGTERM)
            break
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 143, stderr[-3000:]
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("SIGTERM: stopped at epoch 1 step "), last
    saved = last.split(", saved ")[1].split(";")[0]
    assert os.path.isfile(saved) and "dla46_c-1_3" not in saved  # mid-epoch
    command = shlex.split(last.split("continue with: ")[1])
    assert command[0] == "python" and command[-2:] == ["--resume", saved]
    subprocess.run([sys.executable, *command[1:]], cwd=ROOT, check=True, capture_output=True,
                   env={**os.environ, **QUIET}, timeout=300)
    run_script(*args, "--output_dir", tmp_path / "full", env=QUIET)
    name = "ckpt/dla46_c-1_3.ckpt"
    want, got = _ckpt_state(tmp_path / "full" / name), _ckpt_state(tmp_path / "cut" / name)
    assert set(want) == set(got)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)


SECOND_SIGNAL = """
import os, signal, sys, time
sys.path.insert(0, {root!r})
from common.preemption import Preemption
with Preemption(saver=None).installed():
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.2)
    print("first signal noted", flush=True)
    os.kill(os.getpid(), signal.{sig})
    time.sleep(30)
print("not reached")
"""


@pytest.mark.parametrize("sig, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_second_signal_exits_at_once(tmp_path, sig, code):
    from conftest import ROOT
    proc = run_script("-c", SECOND_SIGNAL.format(root=str(ROOT), sig=sig), check=False, timeout=60)
    assert proc.returncode == code, proc.stderr[-2000:]
    assert proc.stdout == "first signal noted\n"
    assert proc.stderr.strip().splitlines()[-1] == f"{sig} again: exiting now, without a checkpoint"
