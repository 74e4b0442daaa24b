"""The ModelZoo launch scripts (scripts/run_*.sh and their <model>/scripts/ wrappers).

What a user of the ModelZoo convention expects (REFERENCE.md): argument and path checks with a
usage line; a rank table checked before anything starts; DEVICE_ID / RANK_ID / RANK_SIZE per
device, one folder and log each; mpirun -n N on GPU; msrun on any target. Beyond one server: a merged
rank table run per server (SERVER_ID / RANK_START / host address), msrun across nodes, an mpirun
hostfile; relative paths made absolute; WAIT_JOBS supervision. `--dry_run` prints each
process's environment and command, and the real launches are checked against those lines with a
stand-in model whose train.py / eval.py only record their environment, folder and arguments.
"""
import json
import os
import re
import shlex
import signal
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")
MODELS = ("dla", "peleenet", "multigrain")
LAUNCHERS = ("run_distribute_train.sh", "run_standalone_train.sh", "run_eval.sh",
             "run_distribute_train_gpu.sh", "run_standalone_train_gpu.sh", "run_eval_gpu.sh",
             "run_distribute_train_cpu.sh", "run_distribute_train_msrun.sh")
DEFAULT_CONFIGS = {"dla": "config/dla34_imagenet2012_config.yaml",
                   "peleenet": "config/peleenet_imagenet2012_config.yaml",
                   "multigrain": "config/resnet50_imagenet2012_config.yaml"}

# A stand-in model entry: records where and how it was started, then exits.
RECORDER = """import json, os, sys
rec = {"cwd": os.getcwd(), "argv": sys.argv[1:],
       "env": {k: os.environ.get(k) for k in ("DEVICE_ID", "RANK_ID", "RANK_SIZE", "DEVICE_NUM",
                                              "RANK_TABLE_FILE", "PYTHONPATH")}}
name = "record_%s.json" % (os.environ.get("RANK_ID") or "x")
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), name), "w") as f:
    json.dump(rec, f)
print("started", flush=True)
"""


def rank_table(n_devices, rank_ids=None, server_id="10.0.0.1", subnet=92):
    """An HCCL rank table as REFERENCE.md gives it (every value a string)."""
    rank_ids = list(range(n_devices)) if rank_ids is None else rank_ids
    devices = [{"device_id": str(i), "device_ip": f"192.98.{subnet}.{100 + i}", "rank_id": str(r)}
               for i, r in enumerate(rank_ids)]
    return {"version": "1.0", "server_count": "1",
            "server_list": [{"server_id": server_id, "device": devices, "host_nic_ip": "reserve"}],
            "status": "completed"}


@pytest.fixture
def work(tmp_path):
    """A job folder (the current folder of the launch) with a dataset, config, checkpoint,
    rank tables and a stand-in model folder."""
    job = tmp_path / "job"
    (job / "data" / "train").mkdir(parents=True)
    model = tmp_path / "fakenet"
    (model / "scripts").mkdir(parents=True)
    for entry in ("train.py", "eval.py"):
        (model / entry).write_text(RECORDER)
    # its default config is its family record's (scripts/default_config.py reads it): a one-family tree
    (tmp_path / "families.py").write_text('FAMILIES = ("fakenet",)\n')
    (model / "src").mkdir()
    (model / "src" / "__init__.py").write_text("from common.family import Family, register_family\n"
                                               "register_family(Family('fakenet', (), 'fake.yaml'))\n")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "fake.yaml").write_text("model: fake\n")
    (job / "cfg.yaml").write_text("model: fake\n")
    (job / "net.ckpt").write_bytes(b"\0")
    (job / "rank_table_8p.json").write_text(json.dumps(rank_table(8)))
    (job / "rank_table_4p.json").write_text(json.dumps(rank_table(4)))
    (job / "rank_table_dup.json").write_text(json.dumps(rank_table(8, [0, 1, 2, 3, 4, 5, 6, 6])))
    (job / "bad.json").write_text('{"version": "1.0", "server_list": [')
    return {"job": job, "model": model, "tmp": tmp_path}


def launch(script, *args, cwd, env=None, timeout=120):
    """Run a launcher with bash the way users do; the interpreter is this one."""
    full_env = dict(os.environ, PYTHON=sys.executable, BIND_CORE="0")
    for knob in ("DRY_RUN", "WAIT_JOBS", "SERVER_ID", "RANK_START", "HOSTFILE", "HCCL_CONNECT_TIMEOUT"):
        full_env.pop(knob, None)
    full_env.update(env or {})
    return subprocess.run(["bash", str(script), *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def top(name):
    return os.path.join(SCRIPTS, name)


def launch_lines(stdout):
    """The '[label] ...' lines other than the [env] / [dry run] ones."""
    return [ln for ln in stdout.splitlines() if re.match(r"\[(rank \d+|train|eval|mpirun|msrun)\] ", ln)]


def parse_line(line):
    """'[label] K=V ... cd DIR && CMD... [> LOG 2>&1 & | 2> LOG]' -> (label, env, dir, cmd, log)."""
    label, rest = re.match(r"\[([^\]]+)\] (.*)$", line).groups()
    words = shlex.split(rest)
    cd = words.index("cd")
    env = dict(w.split("=", 1) for w in words[:cd])
    assert words[cd + 2] == "&&", line
    cmd, log = words[cd + 3:], None
    if cmd[-1] == "&":
        assert cmd[-4] == ">" and cmd[-2] == "2>&1", line
        cmd, log = cmd[:-4], cmd[-3]
    elif cmd[-2] == "2>":
        cmd, log = cmd[:-2], cmd[-1]
    return label, env, words[cd + 1], cmd, log


def option(cmd, key):
    return cmd[cmd.index(key) + 1]


def job_contents(job):
    return sorted(p.name for p in job.iterdir())


# --------------------------------------------------------------------------- Ascend, HCCL
def test_ascend_dry_run_prints_one_command_per_device(work):
    job = work["job"]
    before = job_contents(job)
    proc = launch(top("run_distribute_train.sh"), "rank_table_8p.json", "data", 8, "cfg.yaml",
                  "--model_dir", work["model"], "--dry_run", cwd=job)
    assert proc.returncode == 0, proc.stderr
    env_line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("[env] export "))
    exported = dict(w.split("=", 1) for w in shlex.split(env_line)[2:])
    assert exported["RANK_TABLE_FILE"] == str(job / "rank_table_8p.json")
    assert exported["RANK_SIZE"] == "8" and exported["DEVICE_NUM"] == "8"
    lines = launch_lines(proc.stdout)
    assert len(lines) == 8
    for i, line in enumerate(lines):
        label, env, folder, cmd, log = parse_line(line)
        assert label == f"rank {i}"
        assert env == {"DEVICE_ID": str(i), "RANK_ID": str(i), "RANK_SIZE": "8"}
        assert folder == str(job / f"train_parallel{i}")
        assert log == str(job / f"train_parallel{i}" / "log")
        assert cmd[:2] == [sys.executable, str(work["model"] / "train.py")]
        assert option(cmd, "--device_target") == "Ascend"
        assert option(cmd, "--run_distribute") == "True"
        assert option(cmd, "--data_path") == str(job / "data")
        assert option(cmd, "--config_path") == str(job / "cfg.yaml")
    assert job_contents(job) == before, "a dry run must not create anything"


def test_dry_run_from_environment_and_overrides_pass_through(work):
    proc = launch(top("run_distribute_train.sh"), "rank_table_8p.json", "data", 8, "--model_dir", work["model"],
                  "--epoch_size", 2, "--lr", "0.4", cwd=work["job"], env={"DRY_RUN": "1"})
    assert proc.returncode == 0, proc.stderr
    lines = launch_lines(proc.stdout)
    assert len(lines) == 8
    _, _, _, cmd, _ = parse_line(lines[5])
    assert cmd[-4:] == ["--epoch_size", "2", "--lr", "0.4"]
    assert option(cmd, "--config_path") == str(work["tmp"] / "config" / "fake.yaml"), "the model's default config"
    assert not (work["job"] / "train_parallel0").exists()


def test_ascend_launch_matches_its_dry_run(work):
    """The processes really started get exactly the environment, folder and arguments the dry
    run printed, and each writes its own log."""
    job, args = work["job"], ("rank_table_8p.json", "data", 8, "cfg.yaml", "--model_dir", work["model"])
    dry = launch(top("run_distribute_train.sh"), *args, "--dry_run", cwd=job)
    real = launch(top("run_distribute_train.sh"), *args, cwd=job, env={"WAIT_JOBS": "1"})
    assert real.returncode == 0, real.stderr
    assert launch_lines(real.stdout) == launch_lines(dry.stdout)
    for line in launch_lines(dry.stdout):
        _, env, folder, cmd, log = parse_line(line)
        record = json.loads((work["model"] / f"record_{env['RANK_ID']}.json").read_text())
        assert record["cwd"] == folder
        assert record["argv"] == cmd[2:]
        assert {k: record["env"][k] for k in env} == env
        assert record["env"]["RANK_TABLE_FILE"] == str(job / "rank_table_8p.json")
        assert record["env"]["DEVICE_NUM"] == "8"
        assert record["env"]["PYTHONPATH"].split(os.pathsep)[0] == ROOT
        with open(log, encoding="utf-8") as f:
            assert f.read() == "started\n"


@pytest.mark.parametrize("table, device_num, message", [
    ("rank_table_4p.json", 8, "lists 4 devices but DEVICE_NUM is 8"),
    ("missing.json", 8, "is not a file"),
    ("bad.json", 8, "is not valid JSON"),
    ("rank_table_dup.json", 8, "rank ids"),
    ("rank_table_8p.json", "eight", "DEVICE_NUM must be a positive integer"),
])
def test_ascend_bad_rank_table_stops_with_one_line(work, table, device_num, message):
    job = work["job"]
    before = job_contents(job)
    proc = launch(top("run_distribute_train.sh"), table, "data", device_num, "cfg.yaml",
                  "--model_dir", work["model"], cwd=job)
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert launch_lines(proc.stdout) == []
    assert job_contents(job) == before
    assert not list(work["model"].glob("record_*.json")), "nothing may start"


@pytest.mark.parametrize("args, message", [
    (("rank_table_8p.json", "data"), "expected 3 to 4 arguments, got 2. Usage: bash run_distribute_train.sh"),
    (("rank_table_8p.json", "nodata", 8), "DATASET_PATH"),
    (("rank_table_8p.json", "data", 8, "nocfg.yaml"), "CONFIG_PATH"),
])
def test_argument_and_path_checks(work, args, message):
    proc = launch(top("run_distribute_train.sh"), *args, "--model_dir", work["model"], cwd=work["job"])
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert not list(work["model"].glob("record_*.json"))


def test_no_model_chosen_is_one_line(work):
    proc = launch(top("run_eval.sh"), "data", "net.ckpt", cwd=work["job"], env={"MODEL_DIR": ""})
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "--model_dir" in proc.stderr


GPU_LAUNCHERS = ("run_distribute_train_gpu.sh", "run_standalone_train_gpu.sh", "run_eval_gpu.sh")


def documented_gpu_requirement():
    """The line docs/hardware.md says the GPU launchers print first (its fenced text block)."""
    text = open(os.path.join(ROOT, "docs", "hardware.md"), encoding="utf-8").read()
    section = text[text.index("### The line the GPU launchers print first"):]
    return re.search(r"```text\n(.*?)\n```", section, re.S).group(1)


def without_gpu_requirement(script, stdout):
    """stdout after the CUDA/cuDNN line a GPU launcher prints first (checked by its own test)."""
    return stdout.split("\n", 1)[1] if script in GPU_LAUNCHERS else stdout


@pytest.mark.parametrize("script", LAUNCHERS)
def test_help_prints_usage(script, work):
    proc = launch(top(script), "--help", cwd=work["job"])
    assert proc.returncode == 0
    assert without_gpu_requirement(script, proc.stdout).startswith(f"Usage: bash {script} [")


@pytest.mark.parametrize("script", LAUNCHERS)
def test_gpu_launchers_print_the_cuda_requirement_first(script, work):
    """What MindSpore 2.10's GPU wheel needs (docs/hardware.md, with where it was found) is the first
    line of every GPU launch, dry run, usage or error; the other launchers do not print it. The
    model wrappers exec the top-level scripts, so they print it too."""
    requirement = documented_gpu_requirement()
    assert "CUDA 11.1 + cuDNN 8.0" in requirement and "CUDA 11.6 + cuDNN 8.5" in requirement
    runs = [launch(top(script), "--help", cwd=work["job"]),
            launch(top(script), "data", "--model_dir", work["model"], "--dry_run", cwd=work["job"]),
            launch(os.path.join(ROOT, "dla", "scripts", script), "--help", cwd=work["job"])]
    for proc in runs:
        first = proc.stdout.splitlines()[0] if proc.stdout else ""
        assert (first == requirement) is (script in GPU_LAUNCHERS), proc.stdout
    msrun_gpu = launch(top("run_distribute_train_msrun.sh"), "data", 2, "--model_dir", work["model"],
                       "--device_target", "GPU", "--dry_run", cwd=work["job"])
    assert msrun_gpu.stdout.splitlines()[0] == requirement, msrun_gpu.stdout


# --------------------------------------------------------------------------- one device, eval
@pytest.mark.parametrize("script, target", [("run_standalone_train.sh", "Ascend"),
                                            ("run_standalone_train_gpu.sh", "GPU")])
def test_standalone_dry_run(work, script, target):
    job = work["job"]
    proc = launch(top(script), "data", "--model_dir", work["model"], "--dry_run", cwd=job, env={"DEVICE_ID": "3"})
    assert proc.returncode == 0, proc.stderr
    assert "DEVICE_ID=3" in without_gpu_requirement(script, proc.stdout).splitlines()[0]
    (line,) = launch_lines(proc.stdout)
    label, env, folder, cmd, log = parse_line(line)
    assert (label, folder, log) == ("train", str(job / "train"), str(job / "train" / "log"))
    assert cmd[1] == str(work["model"] / "train.py")
    assert option(cmd, "--device_target") == target and "--run_distribute" not in cmd
    assert not (job / "train").exists()


@pytest.mark.parametrize("script, target", [("run_eval.sh", "Ascend"), ("run_eval_gpu.sh", "GPU")])
def test_eval_dry_run_and_launch(work, script, target):
    job = work["job"]
    args = ("data", "net.ckpt", "cfg.yaml", "--model_dir", work["model"])
    proc = launch(top(script), *args, "--dry_run", cwd=job)
    assert proc.returncode == 0, proc.stderr
    (line,) = launch_lines(proc.stdout)
    label, env, folder, cmd, log = parse_line(line)
    assert (label, folder, log) == ("eval", str(job / "eval"), str(job / "eval" / "log"))
    assert cmd[1] == str(work["model"] / "eval.py")
    assert option(cmd, "--ckpt_file") == str(job / "net.ckpt")
    assert option(cmd, "--device_target") == target
    assert not (job / "eval").exists()
    real = launch(top(script), *args, cwd=job, env={"WAIT_JOBS": "1"})
    assert real.returncode == 0, real.stderr
    record = json.loads((work["model"] / "record_x.json").read_text())
    assert record["cwd"] == folder and record["argv"] == cmd[2:]


def test_eval_missing_checkpoint_is_one_line(work):
    proc = launch(top("run_eval_gpu.sh"), "data", "none.ckpt", "--model_dir", work["model"], cwd=work["job"])
    assert proc.returncode != 0
    assert proc.stderr.strip() == f"run_eval_gpu.sh: error: CHECKPOINT_PATH '{work['job'] / 'none.ckpt'}' is not a file"


# --------------------------------------------------------------------------- GPU, CPU
def test_gpu_dry_run_prints_mpirun_with_n_processes(work):
    job = work["job"]
    proc = launch(top("run_distribute_train_gpu.sh"), "data", 8, "cfg.yaml", "--model_dir", work["model"],
                  "--dry_run", cwd=job)
    assert proc.returncode == 0, proc.stderr
    assert "RANK_SIZE=8 DEVICE_NUM=8" in proc.stdout
    (line,) = launch_lines(proc.stdout)
    label, env, folder, cmd, log = parse_line(line)
    assert (label, folder, log) == ("mpirun", str(job / "train_parallel"), str(job / "train_parallel" / "log"))
    assert cmd[:3] == ["mpirun", "-n", "8"] and "--allow-run-as-root" in cmd
    entry = cmd.index(str(work["model"] / "train.py"))
    assert cmd[entry - 1] == sys.executable
    assert option(cmd, "--device_target") == "GPU" and option(cmd, "--run_distribute") == "True"
    assert not (job / "train_parallel").exists()


def test_gpu_launch_runs_the_printed_mpirun(work, tmp_path):
    """A stand-in mpirun on PATH receives exactly the printed command, in the printed folder."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    mpirun = fake_bin / "mpirun"
    mpirun.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                      f"json.dump({{'cwd': os.getcwd(), 'argv': sys.argv[1:]}}, open({str(tmp_path / 'mpirun.json')!r}, 'w'))\n")
    mpirun.chmod(mpirun.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"}
    args = ("data", 4, "--model_dir", work["model"])
    dry = launch(top("run_distribute_train_gpu.sh"), *args, "--dry_run", cwd=work["job"], env=env)
    real = launch(top("run_distribute_train_gpu.sh"), *args, cwd=work["job"], env=dict(env, WAIT_JOBS="1"))
    assert real.returncode == 0, real.stderr
    _, _, folder, cmd, _ = parse_line(launch_lines(dry.stdout)[0])
    record = json.loads((tmp_path / "mpirun.json").read_text())
    assert record == {"cwd": folder, "argv": cmd[1:]}


def test_cpu_dry_run_prints_msrun(work):
    job = work["job"]
    proc = launch(top("run_distribute_train_cpu.sh"), "data", 2, "cfg.yaml", "--model_dir", work["model"],
                  "--dry_run", cwd=job, env={"MASTER_PORT": "9123"})
    assert proc.returncode == 0, proc.stderr
    (line,) = launch_lines(proc.stdout)
    label, env, folder, cmd, log = parse_line(line)
    logs = job / "train_parallel" / "msrun_log"
    assert (label, folder, log) == ("msrun", str(job / "train_parallel"), str(logs / "msrun.err"))
    assert cmd[:7] == ["msrun", "--worker_num", "2", "--local_worker_num", "2", "--master_port", "9123"]
    assert option(cmd, "--log_dir") == str(logs)
    assert "--join=True" in cmd and "--master_addr" not in cmd and "--node_rank" not in cmd
    # each worker: scripts/msrun_worker.py, which becomes the model's train.py
    worker = cmd.index("--join=True") + 1
    assert cmd[worker:worker + 2] == [os.path.join(SCRIPTS, "msrun_worker.py"), str(work["model"] / "train.py")]
    assert option(cmd, "--device_target") == "CPU" and option(cmd, "--run_distribute") == "True"
    assert not (job / "train_parallel").exists()


def test_cpu_rejects_a_bad_port(work):
    proc = launch(top("run_distribute_train_cpu.sh"), "data", 2, "--model_dir", work["model"], "--dry_run",
                  cwd=work["job"], env={"MASTER_PORT": "80"})
    assert proc.returncode != 0 and "MASTER_PORT must be 1024..65535" in proc.stderr


# --------------------------------------------------------------------------- model wrappers
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("script", LAUNCHERS)
def test_model_wrappers_choose_their_model_and_default_config(work, model, script):
    """Each <model>/scripts/run_*.sh runs the top-level script on its own model folder with its
    default config (REFERENCE.md names): the dry run's command, or, where that file is not
    written yet, the one-line error, names them."""
    wrapper = os.path.join(ROOT, model, "scripts", script)
    args = {"run_distribute_train.sh": ("rank_table_8p.json", "data", 8), "run_eval.sh": ("data", "net.ckpt"),
            "run_eval_gpu.sh": ("data", "net.ckpt"), "run_distribute_train_gpu.sh": ("data", 8),
            "run_distribute_train_cpu.sh": ("data", 2), "run_distribute_train_msrun.sh": ("data", 2)}.get(script, ("data",))
    proc = launch(wrapper, *args, "--dry_run", cwd=work["job"], env={"MODEL_DIR": ""})
    entry = os.path.join(ROOT, model, "eval.py" if "eval" in script else "train.py")
    config = os.path.join(ROOT, DEFAULT_CONFIGS[model])
    if proc.returncode != 0:
        first_missing = entry if not os.path.isfile(entry) else config
        assert proc.stderr.strip().endswith(f"'{first_missing}' is not a file"), proc.stderr
        return
    lines = launch_lines(proc.stdout)
    assert lines and all(f" {entry} " in ln and f"--config_path {config} " in ln for ln in lines)


# --------------------------------------------------------------------------- 16-64 devices
HCCL_TOOLS = os.path.join(SCRIPTS, "hccl_tools.py")


def merged_2x8(job):
    """Two servers' tables as each server writes them, merged by hccl_tools.py --merge."""
    for server, subnet in (("10.0.0.1", 92), ("10.0.0.2", 93)):
        (job / f"hccl_8p_01234567_{server}.json").write_text(json.dumps(rank_table(8, server_id=server, subnet=subnet)))
    proc = subprocess.run([sys.executable, HCCL_TOOLS, "--merge", "hccl_8p_01234567_10.0.0.1.json",
                           "hccl_8p_01234567_10.0.0.2.json"], cwd=job, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return job / "hccl_16p_2s_10.0.0.1.json"


def exported(stdout):
    env_line = next(ln for ln in stdout.splitlines() if ln.startswith("[env] export "))
    return dict(w.split("=", 1) for w in shlex.split(env_line)[2:])


@pytest.mark.parametrize("choice", [{"SERVER_ID": "1"}, {"SERVER_ID": "10.0.0.2"}, {"RANK_START": "8"}])
def test_merged_2x8_table_on_server_1_starts_ranks_8_to_15(work, choice):
    job = work["job"]
    table = merged_2x8(job)
    proc = launch(top("run_distribute_train.sh"), table.name, "data", 8, "cfg.yaml", "--model_dir", work["model"],
                  "--dry_run", cwd=job, env=choice)
    assert proc.returncode == 0, proc.stderr
    env = exported(proc.stdout)
    assert (env["RANK_SIZE"], env["DEVICE_NUM"], env["RANK_TABLE_FILE"]) == ("16", "8", str(table))
    lines = launch_lines(proc.stdout)
    assert len(lines) == 8
    for device, line in enumerate(lines):
        label, env, folder, _, log = parse_line(line)
        rank = 8 + device
        assert label == f"rank {rank}"
        assert env == {"DEVICE_ID": str(device), "RANK_ID": str(rank), "RANK_SIZE": "16"}
        assert folder == str(job / f"train_parallel{rank}") and log == str(job / f"train_parallel{rank}" / "log")


def test_merged_table_server_0_by_this_hosts_address(work):
    """Without SERVER_ID the server whose server_id is one of this host's addresses is chosen."""
    job = work["job"]
    me = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split() or ["127.0.0.1"]
    servers = [rank_table(8, server_id=me[0]), rank_table(8, server_id="203.0.113.9", subnet=93)]
    for i, table in enumerate(servers):
        (job / f"s{i}.json").write_text(json.dumps(table))
    assert subprocess.run([sys.executable, HCCL_TOOLS, "--merge", "s0.json", "s1.json"], cwd=job,
                          capture_output=True, timeout=60).returncode == 0
    proc = launch(top("run_distribute_train.sh"), f"hccl_16p_2s_{me[0]}.json", "data", 8, "--model_dir",
                  work["model"], "--dry_run", cwd=job)
    assert proc.returncode == 0, proc.stderr
    assert [parse_line(ln)[1]["RANK_ID"] for ln in launch_lines(proc.stdout)] == [str(r) for r in range(8)]


@pytest.mark.parametrize("env, device_num, message", [
    ({}, 8, "lists 2 servers (0: 10.0.0.1, 1: 10.0.0.2) and none is this host; set SERVER_ID"),
    ({"SERVER_ID": "2"}, 8, "SERVER_ID 2 is neither an index nor a server_id"),
    ({"RANK_START": "4"}, 8, "RANK_START 4 is not the first rank of a server"),
    ({"SERVER_ID": "1"}, 16, "server 1 (10.0.0.2) of rank table"),
])
def test_multi_server_table_without_a_clear_server_is_one_line(work, env, device_num, message):
    job = work["job"]
    table = merged_2x8(job)
    proc = launch(top("run_distribute_train.sh"), table.name, "data", device_num, "--model_dir", work["model"],
                  cwd=job, env=env)
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert launch_lines(proc.stdout) == [] and not list(work["model"].glob("record_*.json"))


def test_second_group_of_four_runs_on_devices_4_to_7(work, tmp_path):
    """hccl_tools.py writes [4,8) tables with rank ids 0..3: they run on devices 4..7."""
    job = work["job"]
    conf = tmp_path / "hccn.conf"
    conf.write_text("".join(f"address_{i}=192.98.92.{100 + i}\n" for i in range(8)))
    assert subprocess.run([sys.executable, HCCL_TOOLS, "--device_num", "[4,8)", "--hccn_conf", conf,
                           "--server_ip", "10.0.0.1"], cwd=job, capture_output=True, timeout=60).returncode == 0
    proc = launch(top("run_distribute_train.sh"), "hccl_4p_4567_10.0.0.1.json", "data", 4, "--model_dir",
                  work["model"], "--dry_run", cwd=job)
    assert proc.returncode == 0, proc.stderr
    envs = [parse_line(ln)[1] for ln in launch_lines(proc.stdout)]
    assert envs == [{"DEVICE_ID": str(4 + r), "RANK_ID": str(r), "RANK_SIZE": "4"} for r in range(4)]


def test_hccl_connect_timeout_defaults_to_600_unless_set(work):
    args = ("rank_table_8p.json", "data", 8, "--model_dir", work["model"], "--dry_run")
    assert exported(launch(top("run_distribute_train.sh"), *args, cwd=work["job"]).stdout)["HCCL_CONNECT_TIMEOUT"] == "600"
    proc = launch(top("run_distribute_train.sh"), *args, cwd=work["job"], env={"HCCL_CONNECT_TIMEOUT": "1200"})
    assert exported(proc.stdout)["HCCL_CONNECT_TIMEOUT"] == "1200"


def test_msrun_multi_node_dry_run(work):
    """Node 1 of two 8-worker nodes: msrun gets the totals and node 0's address; the launcher's
    options do not reach train.py."""
    job = work["job"]
    proc = launch(top("run_distribute_train_msrun.sh"), "data", 16, "cfg.yaml", "--model_dir", work["model"],
                  "--local_worker_num", 8, "--node_rank", 1, "--master_addr", "10.0.0.1", "--master_port=9000",
                  "--device_target", "GPU", "--epoch_size", 2, "--dry_run", cwd=job)
    assert proc.returncode == 0, proc.stderr
    (line,) = launch_lines(proc.stdout)
    _, _, folder, cmd, log = parse_line(line)
    assert " --worker_num 16 --local_worker_num 8 --master_addr 10.0.0.1 --node_rank 1 " in line
    assert option(cmd, "--master_port") == "9000" and option(cmd, "--cluster_time_out") == "600"
    train = cmd[cmd.index(str(work["model"] / "train.py")):]
    assert option(train, "--device_target") == "GPU" and train.count("--device_target") == 1
    assert not {"--local_worker_num", "--node_rank", "--master_addr", "--master_port", "--master_port=9000",
                "--cluster_time_out"} & set(train)
    assert train[-2:] == ["--epoch_size", "2"]


@pytest.mark.parametrize("args, message", [
    (("--local_worker_num", 8), "--master_addr is needed when this node runs 8 of 16 workers"),
    (("--local_worker_num", 8, "--master_addr", "10.0.0.1", "--node_rank", 2), "--node_rank must be 0..1"),
    (("--local_worker_num", 32), "--local_worker_num 32 is more than WORKER_NUM 16"),
    (("--device_target", "TPU"), "--device_target must be Ascend, GPU or CPU, got 'TPU'"),
    (("--node_rank",), "--node_rank needs a value"),
])
def test_msrun_bad_options_are_one_line(work, args, message):
    proc = launch(top("run_distribute_train_msrun.sh"), "data", 16, "--model_dir", work["model"], *args,
                  "--dry_run", cwd=work["job"])
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and message in errors[0], proc.stderr


def test_gpu_hostfile_from_option_or_environment(work):
    job = work["job"]
    (job / "hosts").write_text("10.0.0.1 slots=8\n10.0.0.2 slots=8\n")
    for how in ({"args": ("--hostfile", "hosts")}, {"env": {"HOSTFILE": "hosts"}}):
        proc = launch(top("run_distribute_train_gpu.sh"), "data", 16, "--model_dir", work["model"],
                      *how.get("args", ()), "--dry_run", cwd=job, env=how.get("env"))
        assert proc.returncode == 0, proc.stderr
        _, _, _, cmd, _ = parse_line(launch_lines(proc.stdout)[0])
        entry = cmd.index(str(work["model"] / "train.py"))
        assert cmd[:5] == ["mpirun", "-n", "16", "--hostfile", str(job / "hosts")]
        exports = [cmd[i + 1] for i in range(entry) if cmd[i] == "-x"]
        assert {"PYTHONPATH", "RANK_SIZE", "DEVICE_NUM"} <= set(exports)
        assert "--hostfile" not in cmd[entry:]
    proc = launch(top("run_distribute_train_gpu.sh"), "data", 16, "--model_dir", work["model"], "--dry_run",
                  cwd=job, env={"HOSTFILE": "nohosts"})
    assert proc.returncode != 0 and proc.stderr.strip().endswith(f"hostfile '{job / 'nohosts'}' is not a file")


def test_relative_paths_reach_every_rank_absolute(work):
    """The ranks run in train_parallel$i/: path options given relative to where the launcher
    runs arrive absolute (URLs, and list files that are relative to data_path, unchanged)."""
    job = work["job"]
    args = ("rank_table_4p.json", "data", 4, "--model_dir", work["model"], "--resume", "ckpt/last.ckpt",
            "--pretrained=net.ckpt", "--output_dir", "out", "--checkpoint_url", "obs://bucket/x.ckpt",
            "--cls_label_path_train", "train_list.txt", "--epoch_size", 2)
    proc = launch(top("run_distribute_train.sh"), *args, cwd=job, env={"WAIT_JOBS": "1"})
    assert proc.returncode == 0, proc.stderr
    for rank in range(4):
        argv = json.loads((work["model"] / f"record_{rank}.json").read_text())["argv"]
        assert option(argv, "--resume") == str(job / "ckpt" / "last.ckpt")
        assert f"--pretrained={job / 'net.ckpt'}" in argv
        assert option(argv, "--output_dir") == str(job / "out")
        assert option(argv, "--checkpoint_url") == "obs://bucket/x.ckpt"
        assert option(argv, "--cls_label_path_train") == "train_list.txt"
    for script, args in (("run_distribute_train_msrun.sh", ("data", 2)), ("run_distribute_train_gpu.sh", ("data", 2))):
        proc = launch(top(script), *args, "--model_dir", work["model"], "--resume", "ckpt/last.ckpt", "--dry_run", cwd=job)
        assert option(parse_line(launch_lines(proc.stdout)[0])[3], "--resume") == str(job / "ckpt" / "last.ckpt")


@pytest.mark.parametrize("knob", ["DRY_RUN", "WAIT_JOBS", "BIND_CORE"])
def test_unknown_switch_values_are_refused(work, knob):
    """DRY_RUN=on is not read as "off" (that would start real processes): it stops in one line."""
    proc = launch(top("run_distribute_train.sh"), "rank_table_8p.json", "data", 8, "--model_dir", work["model"],
                  cwd=work["job"], env={knob: "on"})
    assert proc.returncode != 0
    assert proc.stderr.strip() == f"run_distribute_train.sh: error: {knob} must be 1, true, yes, 0, false or no, got 'on'"
    assert launch_lines(proc.stdout) == [] and not list(work["model"].glob("record_*.json"))


# A stand-in rank: rank 3 fails after a moment; the others start a child and wait to be stopped.
FAILING_RANK = """import os, signal, subprocess, sys, time
here = os.path.dirname(os.path.abspath(__file__))
rank = os.environ["RANK_ID"]
if rank == "3":
    time.sleep(1)
    sys.exit(1)
child = subprocess.Popen(["sleep", "300"])
with open(os.path.join(here, "pids_%s" % rank), "w") as f:
    f.write("%d %d" % (os.getpid(), child.pid))
def stopped(signum, frame):
    open(os.path.join(here, "stopped_%s" % rank), "w").write(str(signum))
    sys.exit(143)
signal.signal(signal.SIGTERM, stopped)
time.sleep(300)
"""


def test_wait_jobs_first_failing_rank_stops_the_others(work):
    job = work["job"]
    (work["model"] / "train.py").write_text(FAILING_RANK)
    proc = launch(top("run_distribute_train.sh"), "rank_table_4p.json", "data", 4, "--model_dir", work["model"],
                  cwd=job, env={"WAIT_JOBS": "1"}, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.strip() == (f"run_distribute_train.sh: error: rank 3 exited with status 1 first; stopped the "
                                   f"others. Its log: {job / 'train_parallel3' / 'log'}")
    for rank in range(3):
        assert (work["model"] / f"stopped_{rank}").read_text() == str(int(signal.SIGTERM))
        for pid in map(int, (work["model"] / f"pids_{rank}").read_text().split()):
            assert not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split()[2], \
                f"rank {rank}'s process {pid} still runs"
