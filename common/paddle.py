"""Everything this repository knows about PaddleClas, in one place: its config keys and yaml sections
(read as ours by ``common.config``) and its parameter names (renamed by ``common.convert``).

Config: top-level Paddle keys are aliases of ours (``classes_num``, ``epochs``, …), some with a value
rule (``image_shape: [3, H, W]`` -> ``image_size: H``); the sections ``ARCHITECTURE.name``,
``LEARNING_RATE`` (function and params), ``OPTIMIZER`` (function, momentum, L2 factor) and
``TRAIN``/``VALID`` (batch size, workers, list file, data dir, mixup/cutmix operators when ``use_mix``)
are translated. Paddle's ``transforms`` lists and other settings with no equivalent are named in one
warning and otherwise ignored: our transforms come from ``image_size``, ``scale``, ``hflip``, … instead.

Weights: PaddleClas's DLA is a line-for-line port of timm's and its PeleeNet (like flytocc/PeleeNet-paddle)
of the official PeleeNet (checked against PaddleClas@d178931 ``ppcls/arch/backbone/model_zoo/{dla,peleenet}.py``):
same module paths, convolutions, paddings, pools, concatenation orders, shortcuts and BatchNorm epsilon.
Only two things differ from the torch reference names our models use:

* BatchNorm running statistics: Paddle ``<bn>._mean`` / ``<bn>._variance`` for torch
  ``<bn>.running_mean`` / ``<bn>.running_var``; Paddle has no ``num_batches_tracked``.
* Linear layers (only PeleeNet's ``classifier``): Paddle stores the weight as [in, out], torch as
  [out, in]. DLA's classifier is a conv: no change.

Which PaddleClas architecture is which of our models is each family's own fact
(``Family.source_names["paddle"]``); ``paddle_archs()`` collects them, and ``paddle_key_map(model)``
adds a family's own renames (``Family.weight_maps["paddle"]``) to the shared rule.
This module imports no MindSpore and no family.
"""
import logging

import numpy as np
import yaml

from common.errors import ConfigError

_logger = logging.getLogger(__name__)

# --- config keys ----------------------------------------------------------------------------------------

# PaddleClas DLA names -> ours (so a Paddle user's values carry over). ``topk`` has the same name in both.
ALIASES = {"classes_num": "num_classes", "epochs": "epoch_size", "ls_epsilon": "label_smooth_factor",
           "pretrained_model": "pretrained", "checkpoints": "resume", "save_interval": "save_checkpoint_epochs",
           "valid_interval": "eval_interval", "validate": "eval_during_train", "model_save_dir": "output_dir",
           "image_shape": "image_size", "use_mix": "mixup",
           # PaddleClas eval/infer: --save_json_path (metrics / per-image top-k), --class_map_path (names)
           "save_json_path": "results_file", "class_map_path": "label_file"}
PADDLE_MIXUP_ALPHA = 0.2  # PaddleClas's MixupOperator alpha in its ImageNet configs


def paddle_bool(value):
    """A Paddle yaml's boolean (``True``, ``"true"``, ``1``, ``"yes"``)."""
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1", "yes")


# image_shape [3,H,W] -> H; use_mix: True -> mixup alpha 0.2; ls_epsilon -1 (Paddle's "off") -> 0.
_ALIAS_VALUE = {"image_shape": lambda v: int(v[-1]) if isinstance(v, (list, tuple)) else int(v),
                "use_mix": lambda v: PADDLE_MIXUP_ALPHA if paddle_bool(v) else 0.0,
                "ls_epsilon": lambda v: max(float(v), 0.0)}
# Paddle keys without an effect here, accepted so that a Paddle yaml loads: key -> why.
PADDLE_IGNORED = {"total_images": "the image count comes from the data",
                  "last_epoch": "the epoch to continue after is read from the --resume checkpoint",
                  "use_distillation": "no distillation here (True is refused)"}
# Paddle's ``mode`` is the run mode (train/valid/...), ours the MindSpore execution mode.
PADDLE_RUN_MODES = ("train", "valid", "eval", "test", "infer")


def translate_key(key, value, where):
    """``(our key, value)`` for one config item, a Paddle alias translated; None for a Paddle key
    that has no effect here (``total_images``, ``mode: train``, …). Other keys pass unchanged."""
    if key in PADDLE_IGNORED:
        if key == "use_distillation" and paddle_bool(value):
            raise ConfigError(f"config error: use_distillation: True in {where}: distillation is not supported")
        return None
    if key == "mode" and str(value).lower() in PADDLE_RUN_MODES:
        return None  # PaddleClas run mode: the script you run decides that here
    if key in ALIASES:
        if key in _ALIAS_VALUE:
            value = _ALIAS_VALUE[key](yaml.safe_load(value) if isinstance(value, str) else value)
        key = ALIASES[key]
    return key, value


# --- config sections ------------------------------------------------------------------------------------

SECTIONS = ("ARCHITECTURE", "LEARNING_RATE", "OPTIMIZER", "TRAIN", "VALID")
_LR_FUNCTIONS = {"cosine": "cosine", "cosinewarmup": "cosine", "piecewise": "piecewise", "linear": "linear",
                 "exponential": "exponential", "exponentialwarmup": "exponential", "poly": "poly"}
_LR_PARAMS = {"lr": "lr", "decay_epochs": "lr_epochs", "gamma": "lr_gamma", "warmup_epoch": "warmup_epochs",
              "end_lr": "min_lr", "power": "poly_power"}
_OPTIMIZERS = {"momentum": "momentum", "adamw": "adamw"}
_FUNCTION_SECTIONS = {"LEARNING_RATE": (_LR_FUNCTIONS, "lr_scheduler", _LR_PARAMS),
                      "OPTIMIZER": (_OPTIMIZERS, "optimizer", {"momentum": "momentum"})}
_MIX_OPERATORS = {"MixupOperator": "mixup", "CutmixOperator": "cutmix"}
_SPLIT_KEYS = {"TRAIN": {"batch_size": "batch_size", "num_workers": "num_parallel_workers",
                         "file_list": "cls_label_path_train", "data_dir": "data_path"},
               "VALID": {"batch_size": "eval_batch_size", "num_workers": None,
                         "file_list": "cls_label_path_val", "data_dir": "data_path"}}


def _choice(table, value, what, where):
    key = str(value).replace("_", "").lower()
    if key not in table:
        raise ConfigError(f"config error: Paddle {what} '{value}' has no equivalent here "
                          f"(known: {', '.join(sorted(table))}; in {where})")
    return table[key]


def _function_section(name, section, where, ignored):
    """LEARNING_RATE / OPTIMIZER: ``function`` picks ours, ``params`` map key by key."""
    functions, target, params = _FUNCTION_SECTIONS[name]
    items = []
    for key, value in section.items():
        if key == "function":
            items.append((target, _choice(functions, value, f"{name}.function", where)))
        elif key == "params":
            for param, param_value in (value or {}).items():
                if param in params:
                    items.append((params[param], param_value))
                else:
                    ignored.append(f"{name}.params.{param}")
        elif key == "regularizer" and name == "OPTIMIZER" and isinstance(value, dict) and "factor" in value:
            items.append(("weight_decay", value["factor"]))  # Paddle's L2 factor
        else:
            ignored.append(f"{name}.{key}")
    return items


def _split(name, section, ignored, use_mix):
    items = []
    for key, value in section.items():
        target = _SPLIT_KEYS[name].get(key)
        if key == "mix" and name == "TRAIN" and not use_mix:
            ignored.append("TRAIN.mix (use_mix is off)")
        elif key == "mix" and name == "TRAIN":
            for op in value or []:
                op_name, params = next(iter(op.items())) if isinstance(op, dict) and op else (op, None)
                if op_name in _MIX_OPERATORS:
                    items.append((_MIX_OPERATORS[op_name], (params or {}).get("alpha", 1.0)))
                else:
                    ignored.append(f"TRAIN.mix.{op_name}")
        elif target and not (key == "data_dir" and name == "VALID"):
            items.append((target, value))
        else:
            ignored.append(f"{name}.{key}")
    return items


def _architecture(name):
    """Our model for a PaddleClas architecture name (a name no family lists: lower-cased, as given)."""
    return paddle_archs().get(str(name), str(name).lower())


def flatten_paddle_sections(data, where):
    """``data`` (a yaml mapping) as ``[(key, value)]``: flat keys as they are, Paddle sections
    translated. The VALID data_dir is taken only when TRAIN has none (we have one data root).
    ``use_mix`` switches TRAIN.mix's operators on (their alphas win over use_mix's default)."""
    train_mix = isinstance(data.get("TRAIN"), dict) and "mix" in data["TRAIN"]
    use_mix = paddle_bool(data.get("use_mix", False))
    # with TRAIN.mix, use_mix only gates it: its operators give the alphas (if on)
    items, ignored = ([("mixup", 0.0), ("cutmix", 0.0)] if train_mix else []), []
    for key, value in data.items():
        if key == "use_mix" and train_mix:
            continue
        if key not in SECTIONS or not isinstance(value, dict):
            items.append((key, value))
        elif key == "ARCHITECTURE":
            items += [("model", _architecture(value["name"]))] if "name" in value else []
            ignored += [f"ARCHITECTURE.{k}" for k in value if k != "name"]
        elif key in _FUNCTION_SECTIONS:
            items += _function_section(key, value, where, ignored)
        else:
            items += _split(key, value, ignored, use_mix)
    train, valid = data.get("TRAIN"), data.get("VALID")
    if isinstance(valid, dict) and "data_dir" in valid and not (isinstance(train, dict) and "data_dir" in train):
        items.append(("data_path", valid["data_dir"]))
    if ignored:
        _logger.warning("%s: Paddle settings without an equivalent here were ignored: %s", where, ", ".join(ignored))
    return items


# --- parameter names ------------------------------------------------------------------------------------

# Paddle keys that carry no parameter of the network, with the reason they are dropped.
PADDLE_IGNORED_KEYS = {
    "StructuredToParameterName@@": "paddle.save's table of structured name -> internal parameter "
                                   "name (e.g. 'conv2d_12.w_0'); bookkeeping, not a weight",
}
_BN_STAT_SUFFIXES = (("._mean", ".running_mean"), ("._variance", ".running_var"))


def paddle_key_to_torch(key):
    """A PaddleClas key as the torch reference names it (None: not a weight, see PADDLE_IGNORED_KEYS):
    ``level2.tree1.bn1._mean`` -> ``level2.tree1.bn1.running_mean``; module paths are the same."""
    if key in PADDLE_IGNORED_KEYS:
        return None
    for paddle_suffix, torch_suffix in _BN_STAT_SUFFIXES:
        if key.endswith(paddle_suffix):
            return key[:-len(paddle_suffix)] + torch_suffix
    return key


def paddle_array_to_torch(key, array):
    """A Paddle array in the layout torch uses for the same parameter.

    Paddle's ``nn.Linear`` stores its weight as [in, out]; torch's as [out, in]. Every 2-D
    ``weight`` in these networks is a Linear (convolutions are 4-D, BatchNorm 1-D).
    """
    if key.endswith("weight") and np.ndim(array) == 2:
        return np.ascontiguousarray(np.transpose(array))
    return array


def paddle_to_torch_state_dict(state, key_fn=paddle_key_to_torch):
    """Rename and re-layout a Paddle state_dict into its torch-style equivalent.

    Returns ``(torch_state, ignored)``: ``ignored`` lists the source keys ``key_fn`` dropped.
    Two Paddle keys landing on one torch key is an error (it would silently lose a weight).
    """
    out, ignored = {}, []
    for key, array in state.items():
        new_key = key_fn(key)
        if new_key is None:
            ignored.append(key)
            continue
        if new_key in out:
            raise ValueError(f"Paddle keys map twice onto '{new_key}' (second: '{key}')")
        out[new_key] = paddle_array_to_torch(key, array)
    return out, ignored


# --- which model is which ---------------------------------------------------------------------------------

def paddle_archs():
    """``{PaddleClas architecture name: our model}``, from every family's ``source_names["paddle"]``."""
    from common.family import families  # loads the families on first use; they import this module's users
    return {paddle: ours for record in families() for paddle, ours in record.source_names.get("paddle", {}).items()}


def paddle_key_map(model):
    """``fn(Paddle key) -> torch-style key or None`` for our model ``model`` (None: the shared rule
    alone): the shared rule, then the family's own ``weight_maps["paddle"]`` when it has one."""
    from common.family import family_of
    record = family_of(model) if model else None
    own = record.weight_maps.get("paddle") if record else None
    return paddle_key_to_torch if own is None else _then(paddle_key_to_torch, own)


def _then(first, second):
    def both(key):
        key = first(key)
        return None if key is None else second(key)
    return both
