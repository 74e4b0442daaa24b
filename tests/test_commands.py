"""Every command we ship, Python and shell, follows the entry points' rules (issue 25): a user's mistake is one
line ``error: …`` on stderr and exit status 2, ``--help`` exits 0, a successful run prints no error noise."""
import os
import subprocess
import sys
import textwrap

import pytest

from common.engine import run_main, train
from conftest import ROOT, load_script
from test_launch_scripts import launch, top, work  # noqa: F401  (the stand-in model and job folder fixture)

SCRIPTS = sorted(name for name in os.listdir(ROOT / "scripts") if name.endswith(".py"))


def script(name, *args, cwd=None):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def one_line(proc, *needles, code=2):
    assert proc.returncode == code, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("[WARNING] ME(")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "error: " in lines[0] and all(str(n) in lines[0] for n in needles), lines[0]
    return lines[0]


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_prints_its_help_and_exits_0(name):
    proc = script(name, "--help")
    assert proc.returncode == 0 and proc.stdout.strip() and "Traceback" not in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("name, args, needle", [
    ("convert_weights.py", [], "the following arguments are required: src, out, --arch"),
    ("hccl_tools.py", ["--plan"], "argument --plan: expected one argument"),
    ("hccl_tools.py", ["--plan", "t.json"], "--plan needs --local_device_num"),
    ("make_demo_data.py", ["out", "--size", "big"], "argument --size: invalid int value: 'big'"),
    ("default_config.py", [], "Usage: python scripts/default_config.py FAMILY_DIR"),
    ("msrun_worker.py", [], "no script to run"),
])
def test_a_scripts_usage_error_is_one_line(name, args, needle, tmp_path):
    one_line(script(name, *args, cwd=tmp_path), needle)


def test_an_entry_points_usage_error_is_one_line(capsys):
    """argparse printed the whole usage (60 lines) before its error."""
    with pytest.raises(SystemExit) as stop:
        run_main(train, ["--lr"], "")
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and err[0].startswith("error: argument --lr: expected one argument")


def _load(name):
    return load_script(f"scripts/{name}.py")


@pytest.mark.parametrize("name, argv, needle", [
    ("convert_weights", ["w.pth", "o.ckpt", "--arch", "dla35"], "Unknown model 'dla35'"),
    ("count_flops", ["dla35"], "Unknown model 'dla35'"),
    ("count_flops", ["dla34", "--size", "112"], "dla34 cannot take image_size 112"),
])
def test_a_scripts_error_after_parsing_is_one_line(name, argv, needle, capsys):
    """In this process (the scripts load MindSpore): what the script's command returns."""
    module = _load(name)
    assert (module.main if name == "convert_weights" else module.cli)(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err


def test_convert_weights_into_a_missing_folder_creates_it(fixtures_dir, tmp_path, capsys):
    convert = _load("convert_weights")
    out = tmp_path / "new" / "sub" / "dla46_c.ckpt"
    assert convert.main([str(fixtures_dir / "timm_dla46_c.safetensors"), str(out), "--arch", "dla46_c"]) == 0
    assert out.stat().st_size > 1_000_000
    (tmp_path / "afile").write_bytes(b"")
    assert convert.main([str(fixtures_dir / "timm_dla46_c.safetensors"), str(tmp_path / "afile" / "x.ckpt"),
                         "--arch", "dla46_c"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: cannot create the folder {tmp_path / 'afile'} for {tmp_path / 'afile' / 'x.ckpt'}: "
                   f"File exists"]


def test_hccl_tools_on_a_binary_hccn_conf_is_one_line(tmp_path):
    conf = tmp_path / "hccn.conf"
    conf.write_bytes(bytes(range(256)) * 4)
    one_line(script("hccl_tools.py", "--hccn_conf", conf, "--server_ip", "10.0.0.1", "--out_dir", tmp_path),
             f"hccn.conf '{conf}' is not a text file")
    assert not list(tmp_path.glob("hccl_*.json"))


# --------------------------------------------------------------------------- the launchers
def test_a_supervised_launch_that_succeeds_says_nothing_on_stderr(work):  # noqa: F811
    """WAIT_JOBS=1: bash printed 'wait: N: no such job' for every process already reaped, on each round."""
    job = work["job"]
    proc = launch(top("run_distribute_train.sh"), "rank_table_8p.json", "data", 8, "cfg.yaml",
                  "--model_dir", work["model"], cwd=job, env={"WAIT_JOBS": "1"})
    assert proc.returncode == 0 and proc.stderr == ""
    assert len(list(work["model"].glob("record_*.json"))) == 8


def test_a_launch_passes_on_the_status_of_the_process_that_failed(work):  # noqa: F811
    """A rank stopping on a user's mistake (2) or a divergence (3): the launcher exits with that status."""
    (work["model"] / "train.py").write_text("import os, sys, time\n"
                                            "sys.exit(3) if os.environ['RANK_ID'] == '2' else time.sleep(1)\n")
    proc = launch(top("run_distribute_train.sh"), "rank_table_4p.json", "data", 4, "cfg.yaml",
                  "--model_dir", work["model"], cwd=work["job"], env={"WAIT_JOBS": "1"})
    one_line(proc, "rank 2 exited with status 3 first", code=3)


def test_a_launchers_own_error_exits_2(work):  # noqa: F811
    one_line(launch(top("run_eval.sh"), "data", "missing.ckpt", "--model_dir", work["model"], cwd=work["job"]),
             "CHECKPOINT_PATH")


@pytest.mark.parametrize("code, status, text", [("2", 2, "status 2"), ("-9", 137, "signal 9")])
def test_msrun_failure_passes_on_the_workers_status(tmp_path, code, status, text):
    logs = tmp_path / "msrun_log"
    logs.mkdir()
    (logs / "msrun.err").write_text(f"[ERROR] Worker process 4242 exit with exception. Error code: {code}.\n")
    (logs / "worker_1.log").write_text("[msrun_worker] rank 1 (local worker 1) pid 4242 on host\n")
    proc = subprocess.run(["bash", "-c", textwrap.dedent(f"""\
        source {ROOT / 'scripts' / '_common.sh'}
        ZOO_SCRIPT=run_distribute_train_msrun.sh
        zoo_msrun_failure {logs} 1
        """)], capture_output=True, text=True, timeout=60)
    one_line(proc, f"rank 1 (local worker 1) exited with {text} first", code=status)
