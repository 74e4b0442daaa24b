"""The command line: parse, spawn one worker per measurement, collect the report, print and write it."""
import argparse
import json
import os
import tempfile

from tools.benchmark.pipeline import measure_pipeline, run_pipeline, write_synthetic_images
from tools.benchmark.report import add_pipeline_ratios, add_ratios, markdown
from tools.benchmark.serving import serve_curve
from tools.benchmark.timing import load_average
from tools.benchmark.twins import run_paired, run_torch, torch_available
from tools.benchmark.workers import EXPORT_SUFFIX, run_model, run_served, run_worker


DEFAULT_MODELS = "dla34,dla46_c,dla60,peleenet,multigrain_resnet50"


# --------------------------------------------------------------------------- arguments
def create_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated registered model names")
    parser.add_argument("--batch", type=int, default=16, help="batch size")
    parser.add_argument("--size", type=int, default=224, help="input side in pixels")
    parser.add_argument("--device_target", default="CPU", choices=("CPU", "GPU", "Ascend"))
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for MindSpore's kernels, onnxruntime and torch "
                             "(0: MindSpore's and onnxruntime's own defaults, torch gets os.cpu_count())")
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions (median, min, max)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed repetitions first")
    parser.add_argument("--steps", type=int, default=1, help="steps (batches) per repetition")
    parser.add_argument("--tasks", default="train,infer", help="train,infer: what to time on each model")
    parser.add_argument("--jit_level", default="", help="O0 | O1 | O2 (default: MindSpore's)")
    parser.add_argument("--graph_kernel", action="store_true", help="enable graph-kernel fusion")
    parser.add_argument("--pipeline", default="", metavar="DATA_DIR",
                        help="also time the input pipeline on DATA_DIR/train/<class>/*, or 'synthetic'")
    parser.add_argument("--workers", default="1,2", help="pipeline worker counts to time, comma-separated")
    parser.add_argument("--pipeline_images", type=int, default=512, help="images written for --pipeline synthetic")
    parser.add_argument("--pipeline_rounds", type=int, default=3,
                        help="pipeline: time every variant this many times, interleaved; ratios are per round")
    parser.add_argument("--export", default="", help="mindir,onnx: also time the exported model served")
    parser.add_argument("--serve_batches", default="", metavar="1,8,32",
                        help="with --export: also serve each format at each of these batches, BatchNorm folded and "
                             "not (the serving curve)")
    parser.add_argument("--compare", action="store_true", help="also time the PyTorch twin if torch and timm import")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with --compare: time MindSpore and the twin alternately this many times per model; "
                             "ratios are the median (min-max) of the paired rounds (a shared machine's speed "
                             "drifts by tens of percent within minutes; pairing cancels the drift)")
    parser.add_argument("--paired", type=int, default=0, metavar="N",
                        help="with --compare: also run MindSpore and the twin in ONE process, step for step, "
                             "N pairs per task; ratio = median of (twin's step time / ours) over the pairs "
                             "(cancels the drift that separate processes minutes apart cannot)")
    parser.add_argument("--distill", default="", metavar="TEACHERS",
                        help="comma-separated teachers: also time each model's training step with each as a "
                             "frozen distillation teacher (docs/distillation.md)")
    parser.add_argument("--json", default="", help="write the results here")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per subprocess")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)  # internal: run one measurement
    return parser


WORKERS = {"model": run_model, "served": run_served, "pipeline": run_pipeline, "torch": run_torch,
           "paired": run_paired}


def worker_main(spec_json):
    spec = json.loads(spec_json)
    load_before = load_average()
    result = WORKERS[spec["kind"]](spec)
    result["load_avg"] = {"before": load_before, "after": load_average()}
    with open(spec["result_path"], "w", encoding="utf-8") as handle:
        json.dump(result, handle)


def base_spec(args):
    return {"batch": args.batch, "size": args.size, "device_target": args.device_target, "threads": args.threads,
            "repeat": args.repeat, "warmup": args.warmup, "steps": args.steps, "jit_level": args.jit_level,
            "graph_kernel": args.graph_kernel, "paired": args.paired, "tasks": [t for t in args.tasks.split(",") if t],
            "serve_batches": [int(b) for b in args.serve_batches.split(",") if b.strip()],
            "distill": [t.strip() for t in args.distill.split(",") if t.strip()]}


def environment(args):
    import platform
    info = {"python": platform.python_version(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "load_avg_start": load_average(), "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA")}
    try:
        from importlib.metadata import version
        info["mindspore"] = version("mindspore")
        info["onnxruntime"] = version("onnxruntime")
    except Exception:  # pylint: disable=broad-except
        pass
    info["settings"] = {k: v for k, v in vars(args).items() if k not in ("worker", "json")}
    return info


def measure(args):
    spec = base_spec(args)
    formats = [f.strip().lower() for f in args.export.split(",") if f.strip()]
    unknown = [f for f in formats if f not in EXPORT_SUFFIX]
    if unknown:
        raise SystemExit(f"error: --export takes mindir and/or onnx, not {', '.join(unknown)}")
    report = {"environment": environment(args), "models": {}}
    torch_reason = ""
    if args.compare:
        torch_reason, versions = torch_available()
        if torch_reason:
            print(f"--compare skipped: torch/timm do not import ({torch_reason})", flush=True)
        else:
            report["environment"]["torch"], report["environment"]["timm"] = versions
    with tempfile.TemporaryDirectory(prefix="benchmark_") as work:
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            ours_spec = dict(spec, kind="model", model=name, out_dir=work)
            twin_spec = dict(spec, kind="torch", model=name)
            print(f"[{name}] MindSpore ...", flush=True)
            entry = run_worker(dict(ours_spec, export=formats), args.timeout)
            for fmt, path in entry.get("exported", {}).items():
                print(f"[{name}] served {fmt} ...", flush=True)
                entry.setdefault("served", {})[fmt] = run_worker(
                    dict(spec, kind="served", backend=fmt, path=path,
                         reference=os.path.join(work, name + "_reference.npy")), args.timeout)
                os.unlink(path)
            entry.pop("exported", None)
            serve_curve(entry, dict(spec, model=name), args.timeout, run_worker)
            if args.compare and not torch_reason:
                print(f"[{name}] PyTorch twin ...", flush=True)
                entry["torch"] = run_worker(twin_spec, args.timeout)
                for round_no in range(2, args.rounds + 1):
                    print(f"[{name}] round {round_no}: MindSpore, PyTorch twin ...", flush=True)
                    ours = run_worker(dict(ours_spec, export=[]), args.timeout)
                    ours["torch"] = run_worker(twin_spec, args.timeout)
                    entry.setdefault("rounds", []).append(ours)
                if args.paired:
                    print(f"[{name}] MindSpore and the twin in one process, {args.paired} pairs ...", flush=True)
                    entry["paired"] = run_worker(dict(twin_spec, kind="paired"), args.timeout)
                add_ratios(entry)
            report["models"][name] = entry
        if args.pipeline:
            data_dir = args.pipeline
            if args.pipeline == "synthetic":
                data_dir = write_synthetic_images(os.path.join(work, "images"), args.pipeline_images)
            report["pipeline"] = measure_pipeline(args, spec, data_dir)
            add_pipeline_ratios(report)
    report["environment"]["load_avg_end"] = load_average()
    return report


def main(argv=None):
    parser = create_parser()
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return None
    if args.repeat < 1 or args.steps < 1 or args.warmup < 0 or args.batch < 1 or args.rounds < 1 or args.paired < 0 \
            or args.pipeline_rounds < 1:
        parser.error("--repeat, --steps, --rounds, --pipeline_rounds and --batch must be >= 1, "
                     "--warmup and --paired >= 0")
    if args.serve_batches and not all(b.strip().isdigit() and int(b) >= 1 for b in args.serve_batches.split(",")):
        parser.error(f"--serve_batches takes batch sizes >= 1, comma-separated, not '{args.serve_batches}'")
    if args.serve_batches and not args.export:
        parser.error("--serve_batches times exported files: it needs --export mindir,onnx")
    if not all(w.strip().isdigit() and int(w) >= 1 for w in args.workers.split(",")):
        parser.error(f"--workers takes worker counts >= 1, comma-separated, not '{args.workers}'")
    if args.paired and not args.compare:
        parser.error("--paired times MindSpore against the PyTorch twin: it needs --compare")
    report = measure(args)
    print(markdown(report), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=1)
    return report
