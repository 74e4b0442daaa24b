"""Configuration: defaults < yaml file < ``--key value`` on the command line.

Every key is known in advance (``DEFAULTS`` plus what a model adds), so a typo in a yaml or on
the command line stops with one line naming the key and the closest valid one, and every
command-line value is typed from the default (bools, ints, floats, lists). PaddleClas DLA key
names are accepted as aliases of ours. Nothing here runs at import.
"""
import argparse
import difflib
import json
import logging
import os
import re
import sys

import yaml

from common.builder import DATA_KEYS, IMAGENET_MEAN, IMAGENET_STD, resolve_data_config
from common.command import ArgumentParser
from common.errors import ConfigError
from common.family import SHARED_EXPORT_HEADS
from common.lr import SCHEDULES
# PaddleClas DLA yamls are read as ours (aliases, sections)
from common.paddle import ALIASES, PADDLE_IGNORED, flatten_paddle_sections, translate_key

# key: (default, help). Sections as comments; the README documents every key.
DEFAULTS = {
    # run
    "model": ("", "registered model name (unset: DEFAULT_MODEL of the top-level families.py)"),
    "num_classes": (1000, "number of classes"),
    "device_target": ("CPU", "CPU | GPU | Ascend"),
    "mode": ("GRAPH", "GRAPH or PYNATIVE"),
    "seed": (1, "random seed"),
    "deterministic": (False, "single-worker input pipeline whose order, augmentation and mixing depend only on "
                             "(seed, epoch): a resumed run repeats an uninterrupted one exactly"),
    "run_distribute": (False, "data-parallel over all launched ranks"),
    "device_id": (0, "device id for GPU/Ascend (DEVICE_ID env wins when set)"),
    "output_dir": ("./output", "checkpoints, logs, exported files"),
    # ModelArts
    "enable_modelarts": (False, "copy data_url/train_url with moxing (ModelArts only)"),
    "data_url": ("", "OBS path of the dataset (ModelArts)"),
    "train_url": ("", "OBS path for outputs (ModelArts)"),
    "checkpoint_url": ("", "OBS file or folder copied to load_path before the run (ModelArts); --pretrained/--resume "
                           "then name a file in it"),
    "load_path": ("/cache/checkpoint_path", "local folder checkpoint_url is copied to (ModelArts)"),
    # data
    "data_path": ("", "dataset root: train/ and val/ class folders, or the list files' root"),
    "train_dir": ("train", "training folder under data_path"),
    "val_dir": ("val", "validation folder under data_path"),
    "cls_label_path_train": ("", "training list file (`rel/path.jpg label` lines); overrides train_dir"),
    "cls_label_path_val": ("", "validation list file; overrides val_dir"),
    "label_file": ("", "class names, one per line (predict); default: the class folders"),
    "image_size": (224, "train crop / eval crop side, one the model's strides can take (another is "
                        "refused, naming the nearest it takes); unset: the model's pretrained_cfg"),
    "crop_pct": (0.875, "eval: resize shorter side to image_size / crop_pct, then center crop; unset: the "
                         "model's pretrained_cfg"),
    "interpolation": ("bilinear", "bilinear | bicubic | nearest; unset: the model's pretrained_cfg"),
    "mean": (list(IMAGENET_MEAN), "normalisation mean (0..1 scale); unset: the model's pretrained_cfg"),
    "std": (list(IMAGENET_STD), "normalisation std (0..1 scale); unset: the model's pretrained_cfg"),
    "num_parallel_workers": (2, "decode/augment workers per rank"),
    "batch_size": (32, "batch size per device"),
    "eval_batch_size": (0, "eval batch size (0: batch_size)"),
    # augmentation
    "hflip": (0.5, "horizontal flip probability"),
    "scale": ([0.08, 1.0], "random-resized-crop area range"),
    "ratio": ([0.75, 1.3333333], "random-resized-crop aspect range"),
    "auto_augment": ("", "'' | autoaugment | randaugment[-m9-n2]"),
    "re_prob": (0.0, "random erasing probability"),
    "mixup": (0.0, "mixup alpha (lam ~ Beta(alpha, alpha)); 0 = off; Paddle use_mix: True gives 0.2"),
    "cutmix": (0.0, "cutmix alpha; 0 = off"),
    "mix_prob": (1.0, "probability that a batch is mixed (when mixup or cutmix is on)"),
    "switch_prob": (0.5, "with mixup and cutmix both on: probability of cutmix for a batch"),
    # optimisation
    "optimizer": ("momentum", "momentum | adamw"),
    "momentum": (0.9, "SGD momentum"),
    "weight_decay": (1e-4, "weight decay (not applied to BatchNorm and biases)"),
    "lr_scheduler": ("cosine", "cosine | step | piecewise | poly | linear | exponential | constant"),
    "lr": (0.1, "base learning rate"),
    "reference_batch_size": (0, "global batch the recipe's lr was written for (0: not stated); a run with another "
                                 "global batch warns, or scales the lr with lr_scale"),
    "lr_scale": ("none", "none | linear: lr, warmup_lr and min_lr x global batch / reference_batch_size"),
    "gradient_accumulation_steps": (1, "batches per optimizer step: global batch = batch_size x devices x this"),
    "min_lr": (0.0, "final learning rate (cosine, poly, linear)"),
    "warmup_epochs": (0, "linear warm-up epochs"),
    "warmup_lr": (0.0, "learning rate at the start of warm-up"),
    "decay_epochs": (30, "step: decay every N epochs"),
    "lr_epochs": ([30, 60, 90], "piecewise: epochs at which lr is multiplied by lr_gamma"),
    "lr_gamma": (0.1, "step/piecewise factor; exponential: per-epoch factor"),
    "poly_power": (2.0, "poly exponent"),
    "epoch_size": (120, "training epochs"),
    "label_smooth_factor": (0.0, "label smoothing"),
    "amp_level": ("O0", "mixed precision: O0 (fp32) | O2 (fp16, BatchNorm and loss fp32) | O3 (all fp16)"),
    "loss_scale": (1.0, "loss scale (fixed) or the initial one (dynamic)"),
    "loss_scale_mode": ("fixed", "fixed | dynamic"),
    "clip_grad": ("none", "gradient clipping before each optimizer step: none | norm (global L2 norm, timm/MindCV) "
                          "| value (element-wise clamp); docs/checkpoints.md"),
    "clip_value": (15.0, "clip_grad's bound: the largest global norm (norm), the largest |gradient| (value)"),
    "drop_rate": (0.0, "dropout before the classifier"),
    "ema_decay": (0.0, "EMA of the weights, e.g. 0.9998; 0 = off; evaluated, saved as ema_best.ckpt / ema-E_S.ckpt"),
    # distillation
    "distill_teacher": ("", "registered model name of a frozen teacher whose soft labels the student learns "
                            "(docs/distillation.md); '' = no distillation"),
    "distill_teacher_ckpt": ("", "the teacher's weights (.ckpt/.safetensors/.pth/.pdparams); required with "
                                 "distill_teacher"),
    "distill_loss": ("kl", "kl (Hinton: KL(teacher || student) at distill_temperature, x T^2) | js "
                           "(SSLD: Jensen-Shannon, x T^2)"),
    "distill_temperature": (1.0, "softmax temperature of both sides of the distill term"),
    "distill_alpha": (0.5, "loss = (1 - alpha) x CE(labels) + alpha x distill term; 1 = the teacher alone"),
    "distill_unlabeled": ("", "list file (one image path per line, under data_path) or folder of extra training "
                              "images without labels: mixed into the epoch, trained on the distill term only"),
    # checkpoints and evaluation
    "pretrained": ("", "weights to start from (.ckpt/.safetensors/.pth/.pdparams); another head is re-initialised"),
    "require_pretrained": (False, "refuse to train without --pretrained or --resume (finetune recipes)"),
    "resume": ("", "training checkpoint to resume (weights, optimizer state, EMA, epoch, step); wins over pretrained"),
    "save_checkpoint": (True, "save checkpoints"),
    "save_checkpoint_epochs": (1, "save every N epochs"),
    "save_checkpoint_steps": (0, "also save every N optimizer steps (mid-epoch; --resume continues there); 0 = off"),
    "keep_checkpoint_max": (5, "keep N periodic checkpoints: the newest (latest_k) or the best by eval top-1 (top_k)"),
    "ckpt_save_policy": ("latest_k", "latest_k | top_k: which keep_checkpoint_max periodic checkpoints are kept "
                                     "(top_k ranks them in ckpt/checkpoints_index.json; docs/checkpoints.md)"),
    "eval_during_train": (True, "evaluate on the val split during training, keep best.ckpt"),
    "eval_interval": (1, "evaluate every N epochs"),
    "log_interval": (10, "print a progress line every N steps (eval: every N batches)"),
    "tensorboard": (False, "also write TensorBoard events under output_dir/tensorboard/ (needs tensorboard)"),
    "dataset_sink_mode": (False, "sink the dataset into the graph (GPU/Ascend)"),
    # eval / export / predict
    "ckpt_file": ("", "checkpoint to evaluate / export / predict with"),
    "file_name": ("", "export: output file name without suffix"),
    "file_format": ("MINDIR", "export: MINDIR | ONNX | AIR"),
    "export_batch_size": (1, "export: batch of the exported input; 0 = any batch (docs/export.md)"),
    "fold_bn": (True, "export: fold each BatchNorm into the convolution before it (one op instead of two, the "
                      "same outputs up to float32 rounding)"),
    "export_head": ("classifier", "export: classifier (logits) | features (the backbone: one output per "
                                  "feature map) | a family's own (its record's export_heads)"),
    "out_indices": ([], "backbone (export_head features): indices into the model's feature_info "
                        "(timm's), [] = all"),
    "predict_path": ("", "predict: image file, several comma-separated, or a folder"),
    "backend": ("mindspore", "predict/eval: mindspore (ckpt or MINDIR) | onnxruntime (ONNX); .onnx implies it"),
    "topk": (5, "top-k for predict"),
    "results_file": ("", "predict: per-image top-k to OUT.csv | OUT.jsonl | OUT.json, written as batches "
                         "finish; eval: its result dict as JSON (Paddle: save_json_path)"),
}

# Valid values of the keys above, checked at parse time: a value outside stops with one line naming
# the key, the value and the range. "[lo, hi]" / "(lo, hi)" intervals (inf allowed; element-wise for
# lists), "len N" and "ascending" for lists, a tuple for the accepted strings. A model family gives
# ranges for its own keys as a third element of its entries: CONFIG_KEYS = {key: (default, help, range)}.
RANGES = {
    "num_classes": "[1, inf)",
    "device_target": ("CPU", "GPU", "Ascend"),
    "export_head": SHARED_EXPORT_HEADS,  # and each family's own (parse_args adds them)
    "seed": "[0, inf)",
    "device_id": "[0, inf)",
    "image_size": "[8, inf)",
    "crop_pct": "(0, 1]",
    "mean": "[0, 1]; len 3",
    "std": "(0, inf); len 3",
    "num_parallel_workers": "[1, inf)",  # more than the machine's cores: lowered, with a warning
    "batch_size": "[1, inf)",
    "eval_batch_size": "[0, inf)",
    "hflip": "[0, 1]",
    "scale": "(0, 1]; len 2; ascending",
    "ratio": "(0, inf); len 2; ascending",
    "re_prob": "[0, 1]",
    "mixup": "[0, inf)",
    "cutmix": "[0, inf)",
    "mix_prob": "[0, 1]",
    "switch_prob": "[0, 1]",
    "momentum": "[0, 1]",
    "weight_decay": "[0, inf)",
    "lr_scheduler": tuple(SCHEDULES),
    "lr": "[0, inf)",
    "reference_batch_size": "[0, inf)",  # 0: the recipe states none
    "lr_scale": ("none", "linear"),
    "gradient_accumulation_steps": "[1, inf)",
    "min_lr": "[0, inf)",
    "warmup_epochs": "[0, inf)",
    "warmup_lr": "[0, inf)",
    "decay_epochs": "[1, inf)",
    "lr_epochs": "[0, inf); ascending",
    "lr_gamma": "(0, inf)",
    "poly_power": "[0, inf)",
    "epoch_size": "[1, inf)",
    "label_smooth_factor": "[0, 1)",
    "loss_scale": "[1, inf)",
    "clip_grad": ("none", "norm", "value"),
    "clip_value": "(0, inf)",
    "drop_rate": "[0, 1)",
    "ema_decay": "[0, 1)",
    "distill_loss": ("kl", "js"),
    "distill_temperature": "(0, inf)",
    "distill_alpha": "[0, 1]",
    "save_checkpoint_epochs": "[1, inf)",
    "keep_checkpoint_max": "[0, inf)",  # 0 keeps every checkpoint
    "ckpt_save_policy": ("latest_k", "top_k"),
    "save_checkpoint_steps": "[0, inf)",  # 0: per epoch only
    "eval_interval": "[1, inf)",
    "log_interval": "[1, inf)",
    "export_batch_size": "[0, inf)",  # 0: a dynamic batch
    "backend": ("mindspore", "onnxruntime"),
    "topk": "[1, inf)",
}

EXECUTION_MODES = ("GRAPH", "PYNATIVE")


class Config(dict):
    """Flat attribute-access dict."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        self[key] = value

    def replace(self, **changes):
        """A copy of the same kind with ``changes`` (a read-only config's copy is read-only)."""
        return type(self)({**self, **changes})


class ReadOnlyConfig(Config):
    """A config that refuses every change: what a task and the family hooks are handed once the config
    is settled (a hook returns the keys it wants changed instead: ``TaskHooks.check_config``)."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("the config is read-only once settled: a hook returns the keys it wants changed "
                        "(TaskHooks.check_config) instead of assigning them")

    __setattr__ = __setitem__ = __delattr__ = __delitem__ = _refuse
    update = pop = popitem = clear = setdefault = __ior__ = _refuse

    def __reduce__(self):  # copy/pickle rebuild it whole, not key by key
        return type(self), (dict(self),)


def _closest(key, known):
    match = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else ""


# PyYAML follows YAML 1.1, where a float needs a dot: it reads 1e-4 / 8e-2 as strings.
_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _exponent_float(value):
    return float(value) if isinstance(value, str) and _EXPONENT_FLOAT.match(value.strip()) else value


def _coerce(key, value, default):
    """``value`` (from yaml or a command-line string) as the type of ``default``."""
    if isinstance(value, str) and not isinstance(default, str):
        try:
            value = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            pass
        if isinstance(default, list) and isinstance(value, str) and "," in value:
            value = [yaml.safe_load(v) for v in value.split(",")]
    if isinstance(default, list):  # list elements, from the yaml file or the command line
        value = [_exponent_float(v) for v in value] if isinstance(value, (list, tuple)) else _exponent_float(value)
    if isinstance(default, float) and isinstance(value, str):
        try:  # PyYAML reads 1e-4 / 1e30 (no dot) as a string
            value = float(value)
        except ValueError:
            pass
    expected = type(default)
    ok = (isinstance(value, bool) if expected is bool else
          isinstance(value, (int, float)) and not isinstance(value, bool) if expected is float else
          isinstance(value, int) and not isinstance(value, bool) if expected is int else
          isinstance(value, (list, tuple)) or isinstance(value, (int, float)) if expected is list else
          isinstance(value, str) or value is None or isinstance(value, (int, float)))
    if not ok:
        raise ConfigError(f"config error: '{key}' expects {expected.__name__} "
                          f"(like {default!r}), got {value!r}")
    if expected is float:
        return float(value)
    if expected is list:
        return list(value) if isinstance(value, (list, tuple)) else [value]
    if expected is str:
        return "" if value is None else str(value)
    return value


def _apply(cfg, defaults, items, where):
    for key, value in items:
        translated = translate_key(key, value, where)  # a PaddleClas key read as ours, or None: no effect here
        if translated is None:
            continue
        key, value = translated
        if key not in defaults:
            raise ConfigError(f"config error: unknown key '{key}' in {where}{_closest(key, defaults)}")
        cfg[key] = _coerce(key, value, defaults[key][0])
        if key == "mode" and cfg.mode.upper() not in EXECUTION_MODES:
            raise ConfigError(f"config error: mode must be GRAPH or PYNATIVE, not '{cfg.mode}' (in {where})")


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key, first, second):
        super().__init__(key)
        self.key, self.first, self.second = key, first, second


class _UniqueKeyLoader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: SafeLoader's own error says so
                break
            if first != key_node.start_mark.line + 1:
                raise _DuplicateKey(key, first, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep=deep)


def load_yaml(path):
    """The first yaml document of ``path`` as a dict (a second one may hold help texts)."""
    if not os.path.isfile(path):
        raise ConfigError(f"config error: config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            docs = list(yaml.load_all(f, Loader=_UniqueKeyLoader))
    except _DuplicateKey as err:
        raise ConfigError(f"config error: {path} sets '{err.key}' twice (lines {err.first} and {err.second}); "
                          f"keep one") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        where = getattr(err, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        raise ConfigError(f"config error: {path} is not a yaml file{at}: "
                          f"{getattr(err, 'problem', None) or type(err).__name__}") from None
    if not docs or docs[0] is None:  # empty or only comments: training on defaults without a word is a surprise
        raise ConfigError(f"config error: {path} is empty (no keys, only comments or blank lines); "
                          f"write the keys it should set, or leave out --config_path")
    data = docs[0]
    if not isinstance(data, dict):
        raise ConfigError(f"config error: {path} must be a mapping of top-level keys")
    return data


def create_parser(defaults, default_config=""):
    parser = ArgumentParser(description="Keys come from the yaml given by --config_path; "
                                     "any of them can be overridden as --key value.", allow_abbrev=False)
    parser.add_argument("--config_path", default=default_config, help="yaml config file")
    for key, (default, help_text, *_) in defaults.items():
        parser.add_argument(f"--{key}", default=None, metavar=type(default).__name__.upper(),
                            help=f"{help_text} (default {default!r})")
    for alias in [*ALIASES, *PADDLE_IGNORED]:
        parser.add_argument(f"--{alias}", default=None, help=argparse.SUPPRESS, dest=f"alias__{alias}")
    return parser


def _model_defaults(argv, default_config):
    """The default model and the keys the chosen model's family adds (the model from --model, else the
    yaml, else the default)."""
    from common.family import default_model, model_config_keys
    pre = ArgumentParser(add_help=False)
    pre.add_argument("--config_path", default=default_config)
    pre.add_argument("--model", default=None)
    known, _ = pre.parse_known_args(argv)
    model = known.model
    if model is None and known.config_path and os.path.isfile(known.config_path):
        model = load_yaml(known.config_path).get("model")
    default = default_model()
    return {"model": (default, DEFAULTS["model"][1]), **model_config_keys(model or default)}


def _model_data_keys(given, model):
    """The preprocessing keys (``builder.DATA_KEYS``) nobody set, from ``model``'s pretrained_cfg."""
    from common.registry import pretrained_cfg
    filled = resolve_data_config(given, pretrained_cfg(model))
    return {k: v for k, v in filled.items() if k in DATA_KEYS and k not in given}


def parse_args(argv=None, default_config=""):
    """Build the config: DEFAULTS (+ the model family's ``config_keys``) < yaml < command line."""
    argv = sys.argv[1:] if argv is None else list(argv)
    defaults = {**DEFAULTS, **_model_defaults(argv, default_config)}
    parser = create_parser(defaults, default_config)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        bad = next((u for u in unknown if u.startswith("--")), unknown[0]).lstrip("-").split("=")[0]
        raise ConfigError(f"config error: unknown option '--{bad}'{_closest(bad, defaults)}")
    given = Config()  # what the yaml and the command line set (an alias sets its key: image_shape -> image_size)
    if args.config_path:
        _apply(given, defaults, flatten_paddle_sections(load_yaml(args.config_path), args.config_path),
               args.config_path)
    cli = [(k[len("alias__"):] if k.startswith("alias__") else k, v)
           for k, v in vars(args).items() if v is not None and k != "config_path"]
    _apply(given, defaults, cli, "the command line")
    cfg = Config({k: v[0] for k, v in defaults.items()})
    cfg.update(_model_data_keys(given, given.get("model", cfg.model)))
    cfg.update(given)
    cfg.config_path = args.config_path
    from common.family import export_heads
    check_ranges(cfg, {**RANGES, "export_head": export_heads(), **{k: v[2] for k, v in defaults.items() if len(v) > 2}})
    return cfg


_INTERVAL = re.compile(r"([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])])$")


def _in_interval(value, interval):
    left, lo, hi, right = _INTERVAL.match(interval).groups()
    lo, hi = float(lo), float(hi)
    above = value >= lo if left == "[" else value > lo
    below = value <= hi if right == "]" else value < hi
    return above and below  # False for NaN


def check_ranges(cfg, ranges):
    """Refuse (one line) a value outside its key's range in ``ranges`` (see ``RANGES``)."""
    for key, spec in ranges.items():
        if key not in cfg:
            continue
        value = cfg[key]
        if isinstance(spec, tuple):
            if value not in spec:
                raise ConfigError(f"config error: unknown {key} '{value}'; choose one of {', '.join(spec)}")
            continue
        values = value if isinstance(value, list) else [value]
        for part in spec.split(";"):
            part = part.strip()
            if part.startswith("len "):
                ok, what = len(values) == int(part[4:]), f"{part[4:]} values"
            elif part == "ascending":
                ok, what = values == sorted(values), "ascending values (low, high)"
            else:
                ok = all(isinstance(v, (int, float)) and _in_interval(v, part) for v in values)
                what = ("values in " if isinstance(value, list) else "in ") + part
            if not ok:
                raise ConfigError(f"config error: '{key}' must be {what}, got {value!r}")
    _cap_workers(cfg)


def _cap_workers(cfg):
    """More input workers than cores: lowered with a warning (MindSpore refuses them, and a config
    written for a big server should still run on a laptop)."""
    cores = os.cpu_count() or 1
    if cfg.get("num_parallel_workers", 0) > cores:
        logging.getLogger(__name__).warning("num_parallel_workers %d is more than the %d CPU cores here: using %d",
                                            cfg.num_parallel_workers, cores, cores)
        cfg.num_parallel_workers = cores


def save_args(cfg, path, rank=0):
    """Write the resolved config next to the outputs (rank 0 only)."""
    if rank != 0:
        return
    from common.errors import OutputError, describe_os_error
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(json.loads(json.dumps(dict(cfg))), f, sort_keys=False)
    except OSError as err:
        raise OutputError(f"could not write {path}: {describe_os_error(err)}") from None
