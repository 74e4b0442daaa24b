"""Read a PaddleClas (legacy, flat-with-sections) DLA yaml as our flat keys.

Top-level Paddle keys are aliases handled by ``common.config`` (``classes_num``, ``epochs``, …).
The sections are translated here: ``ARCHITECTURE.name``, ``LEARNING_RATE`` (function and
params), ``OPTIMIZER`` (function, momentum, L2 factor), ``TRAIN``/``VALID`` (batch size,
workers, list file, data dir, mixup/cutmix operators when ``use_mix``). Paddle's ``transforms``
lists and other settings with no equivalent are named in one warning and otherwise ignored:
our transforms come from ``image_size``, ``scale``, ``hflip``, ``auto_augment``, … instead.
"""
import logging

from common.config import ConfigError

_logger = logging.getLogger(__name__)
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


def flatten_paddle_sections(data, where):
    """``data`` (a yaml mapping) as ``[(key, value)]``: flat keys as they are, Paddle sections
    translated. The VALID data_dir is taken only when TRAIN has none (we have one data root).
    ``use_mix`` switches TRAIN.mix's operators on (their alphas win over use_mix's default)."""
    from common.config import _paddle_bool
    train_mix = isinstance(data.get("TRAIN"), dict) and "mix" in data["TRAIN"]
    use_mix = _paddle_bool(data.get("use_mix", False))
    # with TRAIN.mix, use_mix only gates it: its operators give the alphas (if on)
    items, ignored = ([("mixup", 0.0), ("cutmix", 0.0)] if train_mix else []), []
    for key, value in data.items():
        if key == "use_mix" and train_mix:
            continue
        if key not in SECTIONS or not isinstance(value, dict):
            items.append((key, value))
        elif key == "ARCHITECTURE":
            items += [("model", str(value["name"]).lower())] if "name" in value else []
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
