"""The README's demo: digits data -> train DLA-46-C -> eval -> export MINDIR -> predict.

    python scripts/demo.py [--workdir .] [--epochs N]

Each step is one of the documented shell commands, printed before it runs. At the end the
predictions of the exported MINDIR are compared with those of the checkpoint.
"""
import ast
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from common.command import ArgumentParser, run_command  # noqa: E402


def run(cmd, cwd):
    print(f"\n$ {' '.join(cmd)}", flush=True)
    lines = []
    with subprocess.Popen([sys.executable] + cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip("\n"))
    if proc.returncode:
        print(f"error: demo step failed ({proc.returncode}): {' '.join(cmd)}", file=sys.stderr, flush=True)
        sys.exit(proc.returncode)  # the step's own status (2: a user error, 3: diverged)
    return lines


def predictions(lines):
    return [ast.literal_eval(line) for line in lines if line.startswith("{'class_ids'")]


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=ROOT, help="where demo_data/ and demo_output/ go (default: repo root)")
    parser.add_argument("--epochs", type=int, default=0, help="override the demo config's epochs")
    args = parser.parse_args(argv)
    work = os.path.abspath(args.workdir)
    data, out = os.path.join(work, "demo_data"), os.path.join(work, "demo_output", "dla")
    config = os.path.join(ROOT, "config", "dla_demo_config.yaml")
    common = ["--config_path", config, "--data_path", data, "--output_dir", out]
    if os.path.isdir(out):  # the demo's own folder: a rerun starts over (training refuses an earlier run's folder)
        print(f"removing the previous demo run {out}", flush=True)
        shutil.rmtree(out)
    start = time.time()
    run([os.path.join(ROOT, "scripts", "make_demo_data.py"), data, "--size", "64"], work)
    run([os.path.join(ROOT, "dla", "train.py"), *common] + (["--epoch_size", str(args.epochs)] if args.epochs else []),
        work)
    best = os.path.join(out, "ckpt", "best.ckpt")
    result = run([os.path.join(ROOT, "dla", "eval.py"), *common, "--ckpt_file", best], work)
    mindir = os.path.join(out, "dla46_c")
    run([os.path.join(ROOT, "dla", "export.py"), *common, "--ckpt_file", best, "--file_name", mindir,
         "--file_format", "MINDIR"], work)
    images = ",".join(os.path.join(data, "val", str(c), sorted(os.listdir(os.path.join(data, "val", str(c))))[0])
                      for c in range(10))
    from_ckpt = predictions(run([os.path.join(ROOT, "dla", "predict.py"), *common, "--ckpt_file", best,
                                 "--predict_path", images], work))
    from_mindir = predictions(run([os.path.join(ROOT, "dla", "predict.py"), *common, "--ckpt_file",
                                   mindir + ".mindir", "--predict_path", images], work))
    same = [a["class_ids"][0] == b["class_ids"][0] for a, b in zip(from_ckpt, from_mindir)]
    correct = [p["class_ids"][0] == int(os.path.basename(os.path.dirname(p["file_name"]))) for p in from_mindir]
    print(f"\n{next(l for l in result if l.startswith('result:'))}")
    print(f"MINDIR and checkpoint agree on the top-1 class of {sum(same)}/{len(same)} images; "
          f"MINDIR top-1 correct on {sum(correct)}/{len(correct)}. Demo took {time.time() - start:.0f} s.")
    return 0 if all(same) else 1


if __name__ == "__main__":
    sys.exit(run_command(main))
