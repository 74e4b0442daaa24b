"""The worker protocol (each measurement in a fresh ``benchmark.py --worker SPEC`` process) and the
MindSpore workers: a model's training/inference steps, an exported file served."""
import json
import os
import subprocess
import sys
import tempfile
import time

from tools.benchmark import REPO_ROOT
from tools.benchmark.timing import first_line, peak_rss_mb, summarize, time_repeats


EXPORT_SUFFIX = {"mindir": ".mindir", "onnx": ".onnx"}


# --------------------------------------------------------------------------- MindSpore side
def ms_setup(spec):
    """The project's own context setup (``common.device.init_context``: GRAPH_MODE on the target,
    the CPU defaults), then the thread / jit / fusion overrides asked for."""
    import mindspore as ms
    from common.device import init_context
    init_context(spec["device_target"], "GRAPH")
    if spec["threads"] and spec["device_target"] == "CPU":
        ms.device_context.cpu.op_tuning.threads_num(spec["threads"])
    if spec["jit_level"]:
        ms.set_context(jit_config={"jit_level": spec["jit_level"]})
    if spec["graph_kernel"]:
        ms.set_context(enable_graph_kernel=True)
    return ms


def random_batch(spec, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((spec["batch"], 3, spec["size"], spec["size"]), dtype=np.float32)
    labels = rng.integers(0, 1000, spec["batch"]).astype(np.int32)
    return images, labels


def ms_train_step(net, x, y):
    """One training step as ``Model.train`` runs it: ``nn.TrainOneStepCell``, cross-entropy, Momentum."""
    from mindspore import nn
    loss = nn.WithLossCell(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"))
    step = nn.TrainOneStepCell(loss, nn.Momentum(net.trainable_params(), learning_rate=0.01, momentum=0.9))
    step.set_train(True)
    return lambda: step(x, y).asnumpy()


def run_model(spec):
    """Inference, then training, then the exports, for one registered model."""
    ms = ms_setup(spec)
    from common import create_model

    images, labels = random_batch(spec)
    x, y = ms.Tensor(images), ms.Tensor(labels)
    net = create_model(spec["model"], num_classes=1000)
    result = {"params_m": round(sum(p.size for p in net.trainable_params()) / 1e6, 3)}
    repeat, warmup, steps, batch = spec["repeat"], spec["warmup"], spec["steps"], spec["batch"]
    tasks = spec["tasks"]
    net.set_train(False)
    if "infer" in tasks or spec["export"]:
        reference = net(x).asnumpy()
    if "infer" in tasks:
        result["infer"] = summarize(time_repeats(lambda: net(x).asnumpy(), repeat, warmup, steps), batch)
        result["rss_infer_mb"] = peak_rss_mb()
    for fmt in spec["export"]:
        path = os.path.join(spec["out_dir"], spec["model"])
        try:
            ms.export(net, ms.Tensor(images), file_name=path, file_format=fmt.upper())
            result.setdefault("exported", {})[fmt] = path + EXPORT_SUFFIX[fmt]
        except (RuntimeError, TypeError, ValueError) as err:  # e.g. an op the ONNX exporter lacks
            result.setdefault("served", {})[fmt] = {"error": f"export failed: {first_line(err)}"}
    if spec["export"]:
        import numpy as np
        np.save(os.path.join(spec["out_dir"], spec["model"] + "_reference.npy"), reference)
    if spec["export"] and spec.get("serve_batches"):
        from tools.benchmark.serving import export_curve
        result["curve_exported"] = export_curve(spec, net, ms, random_batch, EXPORT_SUFFIX)
    if "train" in tasks:
        result["train"] = summarize(time_repeats(ms_train_step(net, x, y), repeat, warmup, steps), batch)
        result["rss_train_mb"] = peak_rss_mb()
    for teacher in spec.get("distill") or []:  # the same student's step with each frozen teacher
        from tools.benchmark.distill import ms_distill_step
        try:
            step = ms_distill_step(net, teacher, x, y)
            result.setdefault("distill", {})[teacher] = summarize(time_repeats(step, repeat, warmup, steps), batch)
        except (RuntimeError, TypeError, ValueError) as err:
            result.setdefault("distill", {})[teacher] = {"error": first_line(err)}
    return result


def run_served(spec):
    """Inference of an exported file in a process that loads nothing else of ours."""
    import numpy as np
    images, _ = random_batch(spec)
    path, backend = spec["path"], spec["backend"]
    if backend == "onnx":
        import onnxruntime as ort
        options = ort.SessionOptions()
        if spec["threads"]:
            options.intra_op_num_threads = spec["threads"]
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        run = lambda: session.run(None, {name: images})[0]  # noqa: E731
    else:
        ms = ms_setup(spec)
        from mindspore import nn
        graph = nn.GraphCell(ms.load(path))
        x = ms.Tensor(images)
        run = lambda: graph(x).asnumpy()  # noqa: E731
    reference = np.load(spec["reference"])
    result = {"infer": summarize(time_repeats(run, spec["repeat"], spec["warmup"], spec["steps"]), spec["batch"]),
              "max_abs_diff": float(np.abs(run() - reference).max()), "rss_mb": peak_rss_mb()}
    result["rel_diff"] = result["max_abs_diff"] / max(float(np.abs(reference).max()), 1e-12)
    return result


# --------------------------------------------------------------------------- orchestration
def run_worker(spec, timeout):
    """Run one measurement in a fresh interpreter; returns its result dict or ``{'error': ...}``."""
    with tempfile.NamedTemporaryFile("r", suffix=".json", delete=False) as handle:
        out_path = handle.name
    spec = dict(spec, result_path=out_path)
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "benchmark.py"), "--worker", json.dumps(spec)],
                              capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO_ROOT)
        if proc.returncode != 0:
            lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
            return {"error": lines[-1] if lines else f"exit code {proc.returncode}"}
        with open(out_path, encoding="utf-8") as handle:
            result = json.load(handle)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    finally:
        os.unlink(out_path)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result
