"""Throughput benchmark: training and inference images/s, served (exported) inference, the input
pipeline alone, and optionally the PyTorch twins, printed as a markdown table and written as JSON.

    python benchmark.py --models dla34,dla46_c,dla60,peleenet,multigrain_resnet50 --batch 16 --size 224 \\
        --device_target CPU --repeat 5 --warmup 2 --pipeline synthetic --export mindir,onnx --compare \\
        --json benchmark.json
    python benchmark.py --models "" --batch 32 --pipeline synthetic --pipeline_images 512 --workers 1,2 \
        --repeat 5 --warmup 2 --pipeline_rounds 3      # the input pipeline alone (docs/performance.md)

Each model is measured in a fresh subprocess (so its peak RSS and the oneDNN/thread-pool state
are its own), each exported file in another one (a serving process loads only that file), the
input pipeline and each PyTorch twin in theirs.

* training: forward + backward + Momentum update, GRAPH_MODE, one ``nn.TrainOneStepCell`` call
  per step (the cell ``Model.train`` builds), softmax cross-entropy, random data;
* inference: the network in eval mode, GRAPH_MODE;
* served: the network exported at ``--batch`` (MINDIR run by ``nn.GraphCell(ms.load(...))``,
  ONNX by onnxruntime with ``--threads`` intra-op threads);
* pipeline: images/s out of ``common.data.create_dataset`` (the training split and transforms,
  ``--batch``, ``--size``) from an image folder (``DATA_DIR/train/<class>/*``) at each of
  ``--workers`` (default 1,2), CPU seconds per image, and beside it in the same run on the same
  files the ModelZoo-style pipeline (``ds.ImageFolderDataset`` + ``RandomCropDecodeResize`` +
  flip + normalize + HWC2CHW); also ours with ``deterministic: True`` (one worker by design) and
  with the mixup/cutmix batch map. ``--pipeline_rounds`` rounds, each variant once per round in
  its own process; ratios are the median (min-max) over the rounds. ``--pipeline synthetic``
  writes ``--pipeline_images`` ImageNet-sized JPEGs (500x375) to a temporary folder first;
* ``--compare``: if torch and timm import, the same measurements on the PyTorch twin (timm's DLA,
  a PeleeNet written here after the official ``peleenet.py``, timm's ResNet-50 with GeM pooling
  for MultiGrain), eager, ``torch.set_num_threads(threads)``, SGD with momentum.

``--paired N`` (with ``--compare``) also runs MindSpore and the twin in one process, their steps
alternating, and reports the median over N pairs of the twin's step time / ours: the machine's
drift then hits both sides of every pair alike.

Every figure is the median over ``--repeat`` timed repetitions of ``--steps`` steps after
``--warmup`` untimed ones (the first includes graph compilation), with min and max. Nothing here
needs torch: it is imported only in the twin's subprocess.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.abspath(__file__))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import common  # noqa: E402,F401  # the CPU fast path (oneDNN ISA cap) before MindSpore loads

DEFAULT_MODELS = "dla34,dla46_c,dla60,peleenet,multigrain_resnet50"
EXPORT_SUFFIX = {"mindir": ".mindir", "onnx": ".onnx"}
SYNTHETIC_SIZE = (500, 375)  # the average ImageNet training image
TIMM_TWINS = {"multigrain_resnet50": "resnet50", "multigrain": "resnet50"}
PAIR_PAUSE_S = 0.2  # --paired: idle time before each step; the libraries' spinning threads settle by then


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
    parser.add_argument("--compare", action="store_true", help="also time the PyTorch twin if torch and timm import")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with --compare: time MindSpore and the twin alternately this many times per model; "
                             "ratios are the median (min-max) of the paired rounds (a shared machine's speed "
                             "drifts by tens of percent within minutes; pairing cancels the drift)")
    parser.add_argument("--paired", type=int, default=0, metavar="N",
                        help="with --compare: also run MindSpore and the twin in ONE process, step for step, "
                             "N pairs per task; ratio = median of (twin's step time / ours) over the pairs "
                             "(cancels the drift that separate processes minutes apart cannot)")
    parser.add_argument("--json", default="", help="write the results here")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per subprocess")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)  # internal: run one measurement
    return parser


# --------------------------------------------------------------------------- timing helpers
def time_repeats(fn, repeat, warmup, steps):
    """Wall-clock and process CPU seconds per step for ``repeat`` repetitions of ``steps`` calls,
    after ``warmup`` repetitions."""
    for _ in range(warmup * steps):
        fn()
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            fn()
        walls.append((time.perf_counter() - wall) / steps)
        cpus.append((time.process_time() - cpu) / steps)
    return walls, cpus


def summarize(times, batch):
    """Images/s: median (from the median step time), min, max and the per-repetition values; and
    the median CPU seconds per step over all threads (a busy machine inflates wall time, not this)."""
    walls, cpus = times
    rates = sorted(batch / t for t in walls)
    return {"median": round(batch / statistics.median(walls), 3), "min": round(rates[0], 3),
            "max": round(rates[-1], 3), "runs": [round(r, 3) for r in rates],
            "cpu_s_per_step": round(statistics.median(cpus), 4)}


def peak_rss_mb():
    try:
        import resource
    except ImportError:  # not on Linux/macOS
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def first_line(err):
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(err).__name__


def load_average():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


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
    if "train" in tasks:
        result["train"] = summarize(time_repeats(ms_train_step(net, x, y), repeat, warmup, steps), batch)
        result["rss_train_mb"] = peak_rss_mb()
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


def pipeline_config(data_dir, spec, *extra):
    from common.config import parse_args
    argv = ["--data_path", data_dir, "--batch_size", str(spec["batch"]), "--image_size", str(spec["size"]),
            "--num_parallel_workers", str(spec["workers"])]
    return parse_args(argv + list(extra), "")


PIPELINE_VARIANTS = {  # what each variant adds to the default training config
    "ours": [], "deterministic": ["--deterministic", "True"], "mix": ["--mixup", "0.8", "--cutmix", "1.0"],
}


def modelzoo_pipeline(cfg):
    """The ModelZoo ResNet recipe's training pipeline, for comparison on the same files."""
    import mindspore.dataset as ds
    import mindspore.dataset.vision as vision
    workers = cfg.num_parallel_workers
    dataset = ds.ImageFolderDataset(os.path.join(cfg.data_path, cfg.train_dir), num_parallel_workers=workers,
                                    shuffle=True)
    ops = [vision.RandomCropDecodeResize(cfg.image_size, scale=(0.08, 1.0), ratio=(0.75, 1.333)),
           vision.RandomHorizontalFlip(prob=0.5),
           vision.Normalize(mean=[m * 255 for m in cfg.mean], std=[s * 255 for s in cfg.std]), vision.HWC2CHW()]
    dataset = dataset.map(ops, input_columns="image", num_parallel_workers=workers)
    return dataset.batch(cfg.batch_size, drop_remainder=True)


def run_pipeline(spec):
    """Images/s out of one pipeline variant: one repetition is one pass over the folder."""
    from common.data import create_dataset
    variant = spec["variant"]
    cfg = pipeline_config(spec["data_dir"], spec, *PIPELINE_VARIANTS.get(variant, []))
    dataset = modelzoo_pipeline(cfg) if variant == "modelzoo" else create_dataset(cfg, "train")
    batches = dataset.get_dataset_size()
    iterator = dataset.create_tuple_iterator(num_epochs=spec["warmup"] + spec["repeat"], output_numpy=True)

    def one_epoch():  # a for loop over a multi-epoch iterator ends at the epoch's end
        for _ in iterator:
            pass

    images = batches * cfg.batch_size
    rate = summarize(time_repeats(one_epoch, spec["repeat"], spec["warmup"], 1), images)
    rate["cpu_s_per_image"] = round(rate["cpu_s_per_step"] / images, 6)
    return {"images_per_s": rate, "workers": cfg.num_parallel_workers if variant != "deterministic" else 1,
            "images": images, "rss_mb": peak_rss_mb()}


def pipeline_runs(workers):
    """(variant, workers) pairs of one round: each worker count for ours and ModelZoo's, side by side."""
    runs = [(variant, w) for w in workers for variant in ("modelzoo", "ours")]
    return runs + [("deterministic", 1), ("mix", max(workers))]


def measure_pipeline(args, spec, data_dir):
    workers = sorted({int(w) for w in str(args.workers).split(",") if w.strip()})
    rounds = []
    for round_no in range(1, args.pipeline_rounds + 1):
        results = {}
        for variant, count in pipeline_runs(workers):
            print(f"[pipeline] round {round_no}: {variant}, {count} worker(s) ...", flush=True)
            results[f"{variant}/{count}"] = run_worker(
                dict(spec, kind="pipeline", data_dir=data_dir, variant=variant, workers=count), args.timeout)
        rounds.append(results)
    return summarize_pipeline(rounds, workers)


def _median_ratio(rounds, num, den):
    values = [ratio(measured(r.get(num, {}), "images_per_s"), measured(r.get(den, {}), "images_per_s"))
              for r in rounds]
    values = [v for v in values if v]
    return {"median": round(statistics.median(values), 3), "rounds": values} if values else None


def summarize_pipeline(rounds, workers):
    """Per variant: the first round's result; ratios median (min-max) over the rounds: to the
    ModelZoo-style pipeline at the same worker count and to the variant's own 1-worker rate."""
    lowest, highest = min(workers), max(workers)
    rows = {}
    for key, result in rounds[0].items():
        variant, count = key.split("/")
        row = dict(result, variant=variant)
        if variant in ("ours", "modelzoo") and int(count) != lowest:
            row["vs_own_lowest"] = _median_ratio(rounds, key, f"{variant}/{lowest}")
        reference = {"ours": f"modelzoo/{count}", "deterministic": f"ours/{lowest}", "mix": f"ours/{highest}"}
        if variant in reference:
            row["vs_reference"] = _median_ratio(rounds, key, reference[variant])
            row["reference"] = reference[variant]
        rows[key] = row
    main = rows.get(f"ours/{highest}", {})
    return {"rows": rows, "rounds": rounds, "workers": workers, "images": main.get("images"),
            "images_per_s": main.get("images_per_s")}


def write_synthetic_images(root, count, num_classes=4, seed=0):
    """``count`` JPEGs of ImageNet's average size under root/train/<class>/: smooth colour fields
    with texture, so that they compress (and decode) like photographs rather than noise."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    width, height = SYNTHETIC_SIZE
    for i in range(count):
        folder = os.path.join(root, "train", f"class{i % num_classes}")
        os.makedirs(folder, exist_ok=True)
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), np.int16)
        texture = rng.integers(-12, 13, (height, width, 1), dtype=np.int16)
        image = np.clip(field + texture, 0, 255).astype(np.uint8)
        Image.fromarray(image).save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)
    return root


# --------------------------------------------------------------------------- PyTorch twins
def torch_peleenet(num_classes=1000):
    """PeleeNet as the official ``peleenet.py`` (Wang et al.) defines it, for --compare only."""
    from collections import OrderedDict
    import torch
    from torch import nn
    import torch.nn.functional as F

    class BasicConv2d(nn.Module):
        def __init__(self, in_channels, out_channels, **kwargs):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
            self.norm = nn.BatchNorm2d(out_channels)

        def forward(self, x):
            return F.relu(self.norm(self.conv(x)), inplace=True)

    class DenseLayer(nn.Module):
        def __init__(self, num_input_features, growth_rate, bottleneck_width):
            super().__init__()
            growth_rate = int(growth_rate / 2)
            inter_channel = int(growth_rate * bottleneck_width / 4) * 4
            if inter_channel > num_input_features / 2:
                inter_channel = int(num_input_features / 8) * 4
            self.branch1a = BasicConv2d(num_input_features, inter_channel, kernel_size=1)
            self.branch1b = BasicConv2d(inter_channel, growth_rate, kernel_size=3, padding=1)
            self.branch2a = BasicConv2d(num_input_features, inter_channel, kernel_size=1)
            self.branch2b = BasicConv2d(inter_channel, growth_rate, kernel_size=3, padding=1)
            self.branch2c = BasicConv2d(growth_rate, growth_rate, kernel_size=3, padding=1)

        def forward(self, x):
            branch1 = self.branch1b(self.branch1a(x))
            branch2 = self.branch2c(self.branch2b(self.branch2a(x)))
            return torch.cat([x, branch1, branch2], 1)

    class StemBlock(nn.Module):
        def __init__(self, num_input_channels, num_init_features):
            super().__init__()
            num_stem_features = int(num_init_features / 2)
            self.stem1 = BasicConv2d(num_input_channels, num_init_features, kernel_size=3, stride=2, padding=1)
            self.stem2a = BasicConv2d(num_init_features, num_stem_features, kernel_size=1)
            self.stem2b = BasicConv2d(num_stem_features, num_init_features, kernel_size=3, stride=2, padding=1)
            self.stem3 = BasicConv2d(2 * num_init_features, num_init_features, kernel_size=1)
            self.pool = nn.MaxPool2d(kernel_size=2, stride=2)

        def forward(self, x):
            out = self.stem1(x)
            branch2 = self.stem2b(self.stem2a(out))
            return self.stem3(torch.cat([self.pool(out), branch2], 1))

    class PeleeNet(nn.Module):
        def __init__(self, growth_rate=32, block_config=(3, 4, 8, 6), num_init_features=32,
                     bottleneck_width=(1, 2, 4, 4), drop_rate=0.05, num_classes=1000):
            super().__init__()
            self.features = nn.Sequential(OrderedDict([("stemblock", StemBlock(3, num_init_features))]))
            num_features = num_init_features
            for i, num_layers in enumerate(block_config):
                self.features.add_module(f"denseblock{i + 1}", nn.Sequential(OrderedDict(
                    (f"denselayer{j + 1}", DenseLayer(num_features + j * growth_rate, growth_rate, bottleneck_width[i]))
                    for j in range(num_layers))))
                num_features += num_layers * growth_rate
                self.features.add_module(f"transition{i + 1}", BasicConv2d(num_features, num_features, kernel_size=1))
                if i != len(block_config) - 1:
                    self.features.add_module(f"transition{i + 1}_pool", nn.AvgPool2d(kernel_size=2, stride=2))
            self.classifier = nn.Linear(num_features, num_classes)
            self.drop_rate = drop_rate

        def forward(self, x):
            features = self.features(x)
            out = F.avg_pool2d(features, kernel_size=(features.size(2), features.size(3))).flatten(1)
            if self.drop_rate > 0:
                out = F.dropout(out, p=self.drop_rate, training=self.training)
            return self.classifier(out)

    return PeleeNet(num_classes=num_classes)


def torch_gem_resnet50(timm, num_classes=1000, p=3.0, eps=1e-6):
    """timm's ResNet-50 with MultiGrain's GeM pooling (p fixed) in place of the average pool."""
    from torch import nn

    class GeM(nn.Module):
        def forward(self, x):
            return x.clamp(min=eps).pow(p).mean((2, 3)).pow(1.0 / p)

    model = timm.create_model("resnet50", num_classes=num_classes)
    model.global_pool = GeM()
    return model


def torch_twin(name):
    """(model, description) or raises ImportError when torch / timm are missing."""
    import timm
    if name == "peleenet":
        return torch_peleenet(), "official-PeleeNet twin (benchmark.py)"
    if TIMM_TWINS.get(name) == "resnet50":
        return torch_gem_resnet50(timm), "timm resnet50 + GeM"
    return timm.create_model(name, num_classes=1000), f"timm {name}"


def run_torch(spec):
    import torch
    threads = spec["threads"] or os.cpu_count()
    torch.set_num_threads(threads)
    images, labels = random_batch(spec)
    x, y = torch.from_numpy(images), torch.from_numpy(labels).long()
    model, twin = torch_twin(spec["model"])
    repeat, warmup, steps, batch = spec["repeat"], spec["warmup"], spec["steps"], spec["batch"]
    result = {"twin": twin, "torch_version": torch.__version__, "threads": threads}
    if "infer" in spec["tasks"]:
        result["infer"] = summarize(time_repeats(torch_infer_step(model, x), repeat, warmup, steps), batch)
    if "train" in spec["tasks"]:
        result["train"] = summarize(time_repeats(torch_train_step(model, x, y), repeat, warmup, steps), batch)
    result["rss_mb"] = peak_rss_mb()
    return result


def torch_infer_step(model, x):
    import torch
    model.eval()

    def infer_step():
        with torch.inference_mode():
            return model(x)
    return infer_step


def torch_train_step(model, x, y):
    """The twin's step: zero_grad, forward, cross-entropy, backward, SGD with momentum 0.9."""
    import torch
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    criterion = torch.nn.CrossEntropyLoss()

    def train_step():
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        return loss
    return train_step


def alternate(ours, theirs, pairs, warmup, pause=PAIR_PAUSE_S, clock=time.perf_counter, sleep=time.sleep):
    """Time ``ours`` and ``theirs`` step for step: ``pairs`` pairs after ``warmup`` untimed ones,
    the order swapped every pair, ``pause`` seconds before each step so that neither library's idle
    threads are still spinning into the other's step. Returns (our times, their times)."""
    for _ in range(warmup):
        ours()
        theirs()
    times = {ours: [], theirs: []}
    for pair in range(pairs):
        for step in ((ours, theirs) if pair % 2 == 0 else (theirs, ours)):
            sleep(pause)
            start = clock()
            step()
            times[step].append(clock() - start)
    return times[ours], times[theirs]


def summarize_pairs(ours, theirs, batch):
    """The twin's step time over ours for every pair (> 1: we are faster): median, min, max."""
    ratios = sorted(t / o for o, t in zip(ours, theirs))
    return {"ratio": round(statistics.median(ratios), 3), "min": round(ratios[0], 3), "max": round(ratios[-1], 3),
            "ratios": [round(r, 3) for r in ratios], "ours_img_s": round(batch / statistics.median(ours), 3),
            "twin_img_s": round(batch / statistics.median(theirs), 3)}


def run_paired(spec):
    """MindSpore and the twin in one process, their steps alternating (``alternate``): inference,
    then training, as in ``run_model``."""
    ms = ms_setup(spec)
    import torch
    from common import create_model
    torch.set_num_threads(spec["threads"] or os.cpu_count())
    images, labels = random_batch(spec)
    net = create_model(spec["model"], num_classes=1000)
    model, twin = torch_twin(spec["model"])
    x, y = ms.Tensor(images), ms.Tensor(labels)
    tx, ty = torch.from_numpy(images), torch.from_numpy(labels).long()
    warmup = max(spec["warmup"], 1)  # the first MindSpore step compiles the graph
    result = {"twin": twin, "pairs": spec["paired"], "pause_s": PAIR_PAUSE_S}
    if "infer" in spec["tasks"]:
        net.set_train(False)
        ours, theirs = alternate(lambda: net(x).asnumpy(), torch_infer_step(model, tx), spec["paired"], warmup)
        result["infer"] = summarize_pairs(ours, theirs, spec["batch"])
    if "train" in spec["tasks"]:
        ours, theirs = alternate(ms_train_step(net, x, y), torch_train_step(model, tx, ty), spec["paired"], warmup)
        result["train"] = summarize_pairs(ours, theirs, spec["batch"])
    result["rss_mb"] = peak_rss_mb()
    return result


def torch_available():
    """'' if torch and timm import (in a subprocess, so this process never loads torch), else why not."""
    probe = subprocess.run([sys.executable, "-c", "import torch, timm; print(torch.__version__, timm.__version__)"],
                           capture_output=True, text=True, check=False)
    if probe.returncode == 0:
        return "", probe.stdout.split()
    return (probe.stderr.strip().splitlines() or ["import failed"])[-1], []


WORKERS = {"model": run_model, "served": run_served, "pipeline": run_pipeline, "torch": run_torch,
           "paired": run_paired}


# --------------------------------------------------------------------------- orchestration
def run_worker(spec, timeout):
    """Run one measurement in a fresh interpreter; returns its result dict or ``{'error': ...}``."""
    with tempfile.NamedTemporaryFile("r", suffix=".json", delete=False) as handle:
        out_path = handle.name
    spec = dict(spec, result_path=out_path)
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
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
            "graph_kernel": args.graph_kernel, "paired": args.paired, "tasks": [t for t in args.tasks.split(",") if t]}


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
    errors = [f"{name} {part}: {res['error']}" for name, entry in report["models"].items()
              for part, res in [("torch", entry.get("torch") or {})] + list((entry.get("served") or {}).items())
              if isinstance(res, dict) and "error" in res]
    if compare:
        lines += ["", f"PyTorch {env.get('torch', '?')}, timm {env.get('timm', '?')}, eager; ratios are ours / torch "
                      "(best served: the fastest of GRAPH_MODE, MINDIR and ONNX Runtime)"]
    lines += pipeline_table(report)
    if errors:
        lines += [""] + [f"error: {e}" for e in errors]
    return "\n".join(lines)


PIPELINE_NAMES = {"ours": "ours (`create_dataset`)", "modelzoo": "ModelZoo-style (`ImageFolderDataset` + "
                  "`RandomCropDecodeResize`)", "deterministic": "ours, `deterministic: True`",
                  "mix": "ours + mixup/cutmix batch map"}


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


if __name__ == "__main__":
    main()
