"""The serving curve (``--serve_batches 1,8,32`` with ``--export``): each exported format at each batch,
BatchNorm folded into the convolutions (what ``export.py`` writes by default, ``fold_bn``) and not
(``--fold_bn False``), every file timed in its own serving process (``workers.run_served``)."""
import os

FOLDS = ((False, "unfolded"), (True, "folded"))


def _copy(spec, net, ms, fold):
    """A new instance of ``net`` with its parameters: exporting a cell MindSpore has already compiled for
    another shape fails in its ONNX exporter (BatchNorm's inputs out of range), a new one does not."""
    from common import create_model
    from common.fold import fold_batchnorms
    cell = create_model(spec["model"], num_classes=1000)
    ms.load_param_into_net(cell, net.parameters_dict())
    cell.set_train(False)
    if fold:
        fold_batchnorms(cell)
    return cell


def export_curve(spec, net, ms, random_batch, suffixes):
    """Files for the curve, written by the model worker (which hands in its ``random_batch`` and file
    ``suffixes``): ``[{fmt, fold, batch, path, reference}]``.

    Each file from a copy of ``net`` (its parameters, folded or not): both answer the same images with the
    same numbers (each served result's ``rel_diff`` is against ``net``, unfolded)."""
    import numpy as np
    files = []
    for batch in spec["serve_batches"]:
        images, _ = random_batch(dict(spec, batch=batch))
        reference = os.path.join(spec["out_dir"], f"{spec['model']}_reference_{batch}.npy")
        np.save(reference, net(ms.Tensor(images)).asnumpy())
        for fold, name in FOLDS:
            for fmt in spec["export"]:
                path = os.path.join(spec["out_dir"], f"{spec['model']}_{name}_{batch}")
                ms.export(_copy(spec, net, ms, fold), ms.Tensor(images), file_name=path, file_format=fmt.upper())
                files.append({"fmt": fmt, "fold": name, "batch": batch, "path": path + suffixes[fmt],
                              "reference": reference})
    return files


def serve_curve(entry, spec, timeout, run_worker):
    """Time every file ``export_curve`` wrote (then delete it): ``entry['serving_curve'][fmt][fold][batch]``."""
    for item in entry.pop("curve_exported", []):
        print(f"[{spec['model']}] served {item['fmt']} {item['fold']} batch {item['batch']} ...", flush=True)
        result = run_worker(dict(spec, kind="served", backend=item["fmt"], path=item["path"], batch=item["batch"],
                                 reference=item["reference"]), timeout)
        curve = entry.setdefault("serving_curve", {}).setdefault(item["fmt"], {}).setdefault(item["fold"], {})
        curve[str(item["batch"])] = result
        os.unlink(item["path"])


def curve_table(report, fmt_rate):
    """img/s per batch for each model x format x folding."""
    batches = report["environment"]["settings"].get("serve_batches") or ""
    batches = [b for b in batches.split(",") if b]
    rows = [(name, fmt, fold, points) for name, entry in report["models"].items()
            for fmt, folds in sorted((entry.get("serving_curve") or {}).items())
            for fold, points in sorted(folds.items(), reverse=True)]
    if not rows:
        return []
    header = ["model", "served", "BatchNorm"] + [f"batch {b} img/s" for b in batches]
    lines = ["", "serving curve: each exported file in its own process, img/s at each batch; "
                 "folded = BatchNorm folded into the convolutions (export.py's default)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, fmt, fold, points in rows:
        cells = [fmt_rate((points.get(b) or {}).get("infer")) if "error" not in (points.get(b) or {}) else "error"
                 for b in batches]
        lines.append("| " + " | ".join([name, "ONNX Runtime" if fmt == "onnx" else "MINDIR", fold, *cells]) + " |")
    return lines
