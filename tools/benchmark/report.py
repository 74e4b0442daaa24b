"""Ratios between measurements and the markdown tables printed at the end."""
import statistics

from tools.benchmark.distill import distill_table
from tools.benchmark.serving import curve_table
from tools.benchmark.timing import PAIR_PAUSE_S


def ratio(num, den):
    if not num or not den:
        return None
    return round(num / den, 3)


def measured(res, task, key="median"):
    """One figure of a measurement (``res[task][key]``), None where it is missing or failed."""
    return ((res or {}).get(task) or {}).get(key)


def add_ratios(entry):
    torch_res = entry.get("torch") or {}
    ours_infer = measured(entry, "infer")
    served = {fmt: measured(res, "infer") for fmt, res in (entry.get("served") or {}).items()}
    torch_infer = measured(torch_res, "infer")
    ratios = {"train": ratio(measured(entry, "train"), measured(torch_res, "train")),
              "infer": ratio(ours_infer, torch_infer)}
    for fmt, rate in served.items():
        ratios[f"{fmt}_infer"] = ratio(rate, torch_infer)
    best = max([r for r in [ours_infer, *served.values()] if r] or [0])
    ratios["best_served_infer"] = ratio(best, torch_infer)
    entry["ratios_vs_torch"] = ratios
    add_round_ratios(entry)
    # the same by CPU seconds per step (torch's / ours): what a busy machine disturbs least
    cpu = lambda res, task: measured(res, task, "cpu_s_per_step")  # noqa: E731
    ours_infer_cpu = [c for c in [cpu(entry, "infer")] + [cpu(r, "infer") for r in (entry.get("served") or {}).values()]
                      if c]
    entry["cpu_ratios_vs_torch"] = {
        "train": ratio(cpu(torch_res, "train"), cpu(entry, "train")),
        "infer": ratio(cpu(torch_res, "infer"), cpu(entry, "infer")),
        "best_served_infer": ratio(cpu(torch_res, "infer"), min(ours_infer_cpu) if ours_infer_cpu else None)}


def add_round_ratios(entry):
    """Median and range of train / infer ratios over the rounds (round 1 = the entry itself)."""
    rounds = [entry] + entry.get("rounds", [])
    if len(rounds) < 2:
        return
    for task in ("train", "infer"):
        paired = [ratio(measured(r, task), measured(r.get("torch"), task)) for r in rounds]
        paired = [v for v in paired if v]
        if paired:
            entry["ratios_vs_torch"][task] = round(statistics.median(paired), 3)
            entry["ratios_vs_torch"][f"{task}_rounds"] = paired


def add_pipeline_ratios(report):
    rate = (report["pipeline"].get("images_per_s") or {}).get("median")
    report["pipeline"]["ratio_to_train"] = {
        name: ratio(rate, (entry.get("train") or {}).get("median")) for name, entry in report["models"].items()}


# --------------------------------------------------------------------------- output
def fmt_rate(res):
    if not res:
        return "-"
    if "error" in res:
        return "error"
    return f"{res['median']:.2f} ({res['min']:.2f}-{res['max']:.2f})"


def fmt_ratio(value, rounds=None):
    if not value:
        return "-"
    spread = f" ({min(rounds):.2f}-{max(rounds):.2f})" if rounds and len(rounds) > 1 else ""
    return f"{value:.2f}x{spread}"


def fmt_cpu(res):
    value = (res or {}).get("cpu_s_per_step")
    return f"{value:.3f}" if value else "-"


def cpu_table(report, formats, compare):
    """CPU seconds per step summed over threads: less disturbed by other load than wall time."""
    header = ["model", "train", "infer"] + [f.upper() for f in formats]
    if compare:
        header += ["torch train", "torch infer", "train ratio", "infer ratio", "best served ratio"]
    lines = ["", "CPU seconds per step (all threads of the measuring process; ratios: torch's / ours)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, entry in report["models"].items():
        if "error" in entry:
            continue
        row = [name, fmt_cpu(entry.get("train")), fmt_cpu(entry.get("infer"))]
        row += [fmt_cpu((entry.get("served", {}).get(f) or {}).get("infer")) for f in formats]
        if compare:
            twin, ratios = entry.get("torch") or {}, entry.get("cpu_ratios_vs_torch") or {}
            row += [fmt_cpu(twin.get("train")), fmt_cpu(twin.get("infer")), fmt_ratio(ratios.get("train")),
                    fmt_ratio(ratios.get("infer")), fmt_ratio(ratios.get("best_served_infer"))]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def paired_table(report):
    """--paired: the step-for-step ratios, the figure to quote when the machine's speed drifts."""
    entries = {name: e["paired"] for name, e in report["models"].items() if e.get("paired")}
    if not entries:
        return []
    pause = next((p.get("pause_s") for p in entries.values() if "pause_s" in p), PAIR_PAUSE_S)
    lines = ["", f"MindSpore and the twin in one process, steps alternating ({pause} s apart, order swapped every "
                 "pair); ratio: the twin's step time / ours per pair, median (min-max)", "",
             "| model | pairs | train ratio | infer ratio | ours train img/s | twin train img/s |",
             "|---|---|---|---|---|---|"]
    for name, paired in entries.items():
        if "error" in paired:
            lines.append(f"| {name} | error: {paired['error']} |")
            continue
        train, infer = paired.get("train") or {}, paired.get("infer") or {}
        cells = [fmt_ratio(res.get("ratio"), res.get("ratios")) for res in (train, infer)]
        lines.append(f"| {name} | {paired['pairs']} | {cells[0]} | {cells[1]} | "
                     f"{train.get('ours_img_s', '-')} | {train.get('twin_img_s', '-')} |")
    return lines


def markdown(report):
    env = report["environment"]
    settings = env["settings"]
    lines = [f"batch {settings['batch']}, {settings['size']} px, {settings['device_target']}, threads "
             f"{settings['threads'] or 'default'}, MindSpore {env.get('mindspore', '?')}, "
             f"load average {env.get('load_avg_start')} -> {env.get('load_avg_end')}", "",
             "img/s: median (min-max) over repetitions; RSS: peak MB of the measuring process", ""]
    if not report["models"]:  # --models '' --pipeline ...: the pipeline alone
        return "\n".join(lines + pipeline_table(report))
    formats = sorted({fmt for e in report["models"].values() for fmt in e.get("served", {})})
    compare = any("torch" in e for e in report["models"].values())
    header = ["model", "params (M)", "train img/s", "infer img/s"] + [f"{f.upper()} img/s" for f in formats]
    header += ["peak RSS train/infer (MB)"]
    if compare:
        header += ["torch train", "torch infer", "train ratio", "infer ratio", "best served ratio"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, entry in report["models"].items():
        if "error" in entry:
            lines.append(f"| {name} | error: {entry['error']} |")
            continue
        row = [name, f"{entry.get('params_m', 0):.2f}", fmt_rate(entry.get("train")), fmt_rate(entry.get("infer"))]
        row += [fmt_rate((entry.get("served", {}).get(f) or {}).get("infer")) for f in formats]
        row.append(f"{entry.get('rss_train_mb') or '-'} / {entry.get('rss_infer_mb') or '-'}")
        if compare:
            twin = entry.get("torch") or {}
            ratios = entry.get("ratios_vs_torch") or {}
            row += [fmt_rate(twin.get("train")), fmt_rate(twin.get("infer")),
                    fmt_ratio(ratios.get("train"), ratios.get("train_rounds")),
                    fmt_ratio(ratios.get("infer"), ratios.get("infer_rounds")), fmt_ratio(ratios.get("best_served_infer"))]
        lines.append("| " + " | ".join(row) + " |")
    rounds = settings.get("rounds") or 1
    if compare and rounds > 1:
        lines += ["", f"img/s columns: the first round; train and infer ratios: median (min-max) of {rounds} "
                      "rounds, each MindSpore then the twin back to back"]
    lines += cpu_table(report, formats, compare)
    lines += paired_table(report)
    lines += curve_table(report, fmt_rate)
    errors = [f"{name} {part}: {res['error']}" for name, entry in report["models"].items()
              for part, res in [("torch", entry.get("torch") or {})] + list((entry.get("served") or {}).items())
              if isinstance(res, dict) and "error" in res]
    if compare:
        lines += ["", f"PyTorch {env.get('torch', '?')}, timm {env.get('timm', '?')}, eager; ratios are ours / torch "
                      "(best served: the fastest of GRAPH_MODE, MINDIR and ONNX Runtime)"]
    lines += distill_table(report, fmt_rate)
    lines += pipeline_table(report)
    if errors:
        lines += [""] + [f"error: {e}" for e in errors]
    return "\n".join(lines)


PIPELINE_NAMES = {"ours": "ours (`create_dataset`)", "modelzoo": "ModelZoo-style (`ImageFolderDataset` + "
                  "`RandomCropDecodeResize`)", "deterministic": "ours, `deterministic: True`",
                  "mix": "ours + mixup/cutmix batch map", "reader": "ours, the reading source alone (no decoding)"}


SHORT_NAMES = {"ours": "ours", "modelzoo": "ModelZoo-style"}


def pipeline_table(report):
    """The input pipeline table (ready for docs/performance.md)."""
    pipeline = report.get("pipeline")
    if not pipeline:
        return []
    if "error" in pipeline:
        return ["", f"input pipeline: error: {pipeline['error']}"]
    rounds = len(pipeline.get("rounds", [])) or 1
    lines = ["", f"input pipeline: training split and transforms, {pipeline.get('images')} images per epoch "
                 f"(batch {report['environment']['settings']['batch']}, {report['environment']['settings']['size']} "
                 f"px); img/s: first round, median (min-max) of repetitions; ratios: median (min-max) of {rounds} "
                 "round(s)", "",
             "| pipeline | workers | img/s | CPU ms / image | vs reference (same run) | vs its 1-worker rate |",
             "|---|---|---|---|---|---|"]
    for key, row in pipeline.get("rows", {}).items():
        name = PIPELINE_NAMES.get(row.get("variant"), key)
        if "error" in row:
            lines.append(f"| {name} | {key.split('/')[1]} | error: {row['error']} | | | |")
            continue
        cpu = (row["images_per_s"].get("cpu_s_per_image") or 0) * 1000
        ref = row.get("vs_reference")
        ref_name, ref_workers = row.get("reference", "/").split("/")
        ref_cell = "-"
        if ref:
            ref_cell = f"{fmt_ratio(ref['median'], ref['rounds'])} of {SHORT_NAMES[ref_name]} at {ref_workers}"
        own = row.get("vs_own_lowest")
        lines.append(f"| {name} | {row['workers']} | {fmt_rate(row['images_per_s'])} | {cpu:.2f} | {ref_cell} | "
                     f"{fmt_ratio(own['median'], own['rounds']) if own else '-'} |")
    ratios = ", ".join(f"{n} {fmt_ratio(r)}" for n, r in pipeline.get("ratio_to_train", {}).items())
    if ratios:
        lines += ["", f"pipeline ({max(pipeline['workers'])} workers) / training throughput: {ratios}"]
    return lines
