"""The input pipeline alone: ours (``common.data.create_dataset``) against a ModelZoo-style pipeline on the
same files, per worker count, over rounds; and the synthetic ImageNet-sized image folder."""
import os
import statistics

from tools.benchmark.report import measured, ratio
from tools.benchmark.timing import peak_rss_mb, summarize, time_repeats
from tools.benchmark.workers import run_worker


SYNTHETIC_SIZE = (500, 375)  # the average ImageNet training image


def pipeline_config(data_dir, spec, *extra):
    from common.config import parse_args
    argv = ["--data_path", data_dir, "--batch_size", str(spec["batch"]), "--image_size", str(spec["size"]),
            "--num_parallel_workers", str(spec["workers"])]
    return parse_args(argv + list(extra), "")


PIPELINE_VARIANTS = {  # what each variant adds to the default training config
    "ours": [], "deterministic": ["--deterministic", "True"], "mix": ["--mixup", "0.8", "--cutmix", "1.0"],
    "reader": [],
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


def reader_pipeline(cfg):
    """Our source alone (one thread reads and checks the files, nothing decodes): the images/s that
    one reader can hand to any number of decode workers."""
    import mindspore.dataset as ds
    import mindspore.dataset.transforms as transforms
    from common.data.dataset import ImageSource
    from common.data.order import ShardOrder
    from common.data.samples import dataset_samples
    samples = dataset_samples(cfg, "train")
    source = ds.GeneratorDataset(ImageSource(samples, ShardOrder(len(samples), seed=cfg.seed)), ["image", "label"],
                                 python_multiprocessing=False)
    dataset = source.map(transforms.Slice(slice(0, 1)), input_columns="image")  # one byte per image batched
    dataset = dataset.batch(cfg.batch_size, drop_remainder=True)
    dataset.dataset_size = len(samples) // cfg.batch_size  # a source without __len__: not counted by reading
    return dataset


def run_pipeline(spec):
    """Images/s out of one pipeline variant: one repetition is one pass over the folder."""
    from common.data import create_dataset
    variant = spec["variant"]
    cfg = pipeline_config(spec["data_dir"], spec, *PIPELINE_VARIANTS.get(variant, []))
    builders = {"modelzoo": modelzoo_pipeline, "reader": reader_pipeline}
    dataset = builders[variant](cfg) if variant in builders else create_dataset(cfg, "train")
    batches = dataset.get_dataset_size()
    iterator = dataset.create_tuple_iterator(num_epochs=spec["warmup"] + spec["repeat"], output_numpy=True)

    def one_epoch():  # a for loop over a multi-epoch iterator ends at the epoch's end
        for _ in iterator:
            pass

    images = batches * cfg.batch_size
    rate = summarize(time_repeats(one_epoch, spec["repeat"], spec["warmup"], 1), images)
    rate["cpu_s_per_image"] = round(rate["cpu_s_per_step"] / images, 6)
    return {"images_per_s": rate, "workers": 1 if variant in ("deterministic", "reader") else cfg.num_parallel_workers,
            "images": images, "rss_mb": peak_rss_mb()}


def pipeline_runs(workers):
    """(variant, workers) pairs of one round: each worker count for ours and ModelZoo's, side by side."""
    runs = [(variant, w) for w in workers for variant in ("modelzoo", "ours")]
    return runs + [("deterministic", 1), ("mix", max(workers)), ("reader", 1)]


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
