"""Does distillation help a small student? The experiment of docs/distillation.md, on scikit-learn's digits.

    python tools/distill_experiment.py OUT [--seeds 1 2 3] [--per_class 20] [--image_size 32]

1. digits as image folders (scripts/make_demo_data.py); a labeled subset of ``per_class`` training images per
   class (list file), the other training images as ``distill_unlabeled``;
2. a teacher (``--teacher``, default dla34: 15.7 M parameters against the student's 1.1 M) trained by dla/train.py
   on every training label;
3. SSLD-style: the student (``--student``, default dla46_c) alone on the labeled subset vs distilled with JS,
   ``distill_alpha`` ``--ssld_alpha`` and the unlabeled images; the student alone gets as many optimizer steps
   as the distilled run (more epochs over its smaller set);
4. classic: the student alone on every training label vs Hinton KL (``--kl_temperature``, alpha 0.5), same epochs.

Each run is one dla/train.py process per seed; its top-1 is the val split's after the last epoch (no best-of).
Prints a markdown table (mean, min..max over the seeds) and writes it to OUT/results.md, with the issue's bar
for SSLD: its mean gain over the student alone against the seeds' spread (the wider of the two runs' ranges).
"""
import datetime
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.command import ArgumentParser, run_command  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVAL_LINE = re.compile(r"epoch: (\d+) eval: top_1_accuracy: ([0-9.]+)")


def split_labeled(data, per_class, seed=0):
    """(labeled list file, unlabeled list file, labeled count, unlabeled count) from ``data``/train_list.txt."""
    import numpy as np
    lines = [line.split() for line in open(os.path.join(data, "train_list.txt"), encoding="utf-8") if line.strip()]
    order = np.random.RandomState(seed).permutation(len(lines))
    taken, labeled, unlabeled = {}, [], []
    for i in order:
        rel, label = lines[i]
        if taken.get(label, 0) < per_class:
            taken[label] = taken.get(label, 0) + 1
            labeled.append(f"{rel} {label}")
        else:
            unlabeled.append(rel)  # its label is dropped: the run never sees it
    paths = os.path.join(data, "labeled_list.txt"), os.path.join(data, "unlabeled_list.txt")
    for path, rows in zip(paths, (labeled, unlabeled)):
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(sorted(rows)) + "\n")
    return paths[0], paths[1], len(labeled), len(unlabeled)


def train(out, args, *extra):
    """Run dla/train.py; (top-1 after the last epoch, output dir)."""
    if not os.path.isfile(os.path.join(out, "done")):
        cmd = [sys.executable, os.path.join(ROOT, "dla", "train.py"), "--config_path",
               os.path.join(ROOT, "config", "dla_demo_config.yaml"), "--data_path", args.data,
               "--image_size", str(args.image_size), "--output_dir", out, "--keep_checkpoint_max", "1",
               "--log_interval", "1000", "--eval_interval", "1000", *map(str, extra)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        with open(os.path.join(out, "log.txt"), "w", encoding="utf-8") as f:
            f.write(proc.stdout)
        open(os.path.join(out, "done"), "w").close()
    found = EVAL_LINE.findall(open(os.path.join(out, "log.txt"), encoding="utf-8").read())
    return float(found[-1][1]), out


def run_seeds(name, args, *extra):
    results = []
    for seed in args.seeds:
        top1, _ = train(os.path.join(args.out, f"{name}_seed{seed}"), args, "--seed", seed, *extra)
        print(f"{name} seed {seed}: top-1 {top1:.4f}", flush=True)
        results.append(top1)
    return results


def row(label, values, base=None):
    mean = sum(values) / len(values)
    text = f"| {label} | {mean * 100:.2f} | {min(values) * 100:.2f}..{max(values) * 100:.2f} |"
    if base is not None:
        gain = [v - b for v, b in zip(values, base)]
        text += f" {(mean - sum(base) / len(base)) * 100:+.2f} ({min(gain) * 100:+.2f}..{max(gain) * 100:+.2f}) |"
    else:
        text += " |"
    return text


def ssld_verdict(alone, ssld):
    """The issue's bar: SSLD better on average by more than the seeds' spread (the wider of the two ranges)."""
    gain = (sum(ssld) / len(ssld) - sum(alone) / len(alone)) * 100
    spread = max(max(alone) - min(alone), max(ssld) - min(ssld)) * 100
    verdict = "met" if gain > spread else "NOT met"
    return f"SSLD bar {verdict}: mean gain {gain:+.2f} points against a spread of {spread:.2f} (the wider range)."


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output folder (runs already done there are reused)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--per_class", type=int, default=20, help="labeled training images per class")
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--teacher", default="dla34")
    parser.add_argument("--student", default="dla46_c")
    parser.add_argument("--teacher_epochs", type=int, default=30)
    parser.add_argument("--teacher_lr", type=float, default=0.05,
                        help="the demo's 0.1 spikes the larger teacher's loss")
    parser.add_argument("--ssld_epochs", type=int, default=15, help="epochs of the distilled run over all images")
    parser.add_argument("--ssld_alpha", type=float, default=1.0)
    parser.add_argument("--ssld_temperature", type=float, default=1.0)
    parser.add_argument("--full_epochs", type=int, default=4, help="epochs of the classic comparison")
    parser.add_argument("--kl_temperature", type=float, default=4.0)
    args = parser.parse_args(argv)
    args.out = os.path.abspath(args.out)
    args.data = os.path.join(args.out, "digits")
    if not os.path.isdir(args.data):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_demo_data.py"), args.data,
                        "--size", str(args.image_size)], check=True)
    labeled, unlabeled, n_labeled, n_unlabeled = split_labeled(args.data, args.per_class)
    n_train = n_labeled + n_unlabeled

    teacher_top1, teacher_out = train(os.path.join(args.out, "teacher"), args, "--model", args.teacher,
                                      "--epoch_size", args.teacher_epochs, "--lr", args.teacher_lr)
    teacher_ckpt = os.path.join(teacher_out, "ckpt", next(f for f in sorted(os.listdir(os.path.join(
        teacher_out, "ckpt"))) if f.startswith(args.teacher + "-")))
    student = ["--model", args.student]
    distill = ["--distill_teacher", args.teacher, "--distill_teacher_ckpt", teacher_ckpt]
    steps = args.ssld_epochs * (n_train // 32)  # the distilled run's optimizer steps (batch 32)
    alone_epochs = max(1, round(steps / (n_labeled // 32)))
    alone = run_seeds("alone_labeled", args, *student, "--cls_label_path_train", labeled,
                      "--epoch_size", alone_epochs)
    ssld = run_seeds("ssld", args, *student, *distill, "--cls_label_path_train", labeled, "--distill_unlabeled",
                     unlabeled, "--distill_loss", "js", "--distill_alpha", args.ssld_alpha,
                     "--distill_temperature", args.ssld_temperature, "--epoch_size", args.ssld_epochs)
    full = run_seeds("alone_full", args, *student, "--epoch_size", args.full_epochs)
    kl = run_seeds("kl_full", args, *student, *distill, "--distill_loss", "kl", "--distill_alpha", 0.5,
                   "--distill_temperature", args.kl_temperature, "--epoch_size", args.full_epochs)

    seeds = " ".join(map(str, args.seeds))
    table = [f"Run {datetime.date.today().isoformat()}: `python tools/distill_experiment.py OUT "
             f"{' '.join(_options(argv))}` — teacher {args.teacher} "
             f"top-1 {teacher_top1 * 100:.2f} ({args.teacher_epochs} epochs at lr {args.teacher_lr:g}, "
             f"all {n_train} labels); "
             f"student {args.student}, {args.image_size} px, seeds {seeds}; top-1 on the {_val_count(args.data)} "
             f"val images after the last epoch.", "",
             "| run | top-1 mean | range | vs. student alone: mean (per-seed range) |", "|---|---|---|---|",
             row(f"student alone, {n_labeled} labels, {alone_epochs} epochs ({alone_epochs * (n_labeled // 32)} steps)",
                 alone),
             row(f"SSLD: JS, alpha {args.ssld_alpha:g}, T {args.ssld_temperature:g}, + {n_unlabeled} unlabeled, "
                 f"{args.ssld_epochs} epochs ({steps} steps)", ssld, alone),
             row(f"student alone, all {n_train} labels, {args.full_epochs} epochs", full),
             row(f"classic: KL, alpha 0.5, T {args.kl_temperature:g}, all labels, {args.full_epochs} epochs", kl, full),
             "", ssld_verdict(alone, ssld)]
    text = "\n".join(table)
    print(text)
    with open(os.path.join(args.out, "results.md"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    return 0


def _options(argv):
    """The command's options without OUT (the first positional)."""
    given = list(sys.argv[1:] if argv is None else argv)
    first = next((i for i, a in enumerate(given) if not a.startswith("-")), None)
    return given[:first] + given[first + 1:] if first is not None else given


def _val_count(data):
    return sum(1 for line in open(os.path.join(data, "val_list.txt"), encoding="utf-8") if line.strip())


if __name__ == "__main__":
    sys.exit(run_command(main))
