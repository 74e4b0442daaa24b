"""The record a model family gives the spine: its models, config keys, hooks, weight-name maps,
optional checkpoint keys and default config, in one place.

A family registers it in its ``src/__init__.py``: ``FAMILY = register_family(Family(...))``. The spine
finds it by model name (``family_of``, ``hooks_for``); it never names a family. Which family folders
exist is listed above ``common``, in the top-level ``families.py`` (see ``import_families``).
This module imports no MindSpore, so a model file can import it without loading the trainer.
"""
import dataclasses
import importlib
import os
from dataclasses import field
from typing import Callable, Optional

_FAMILIES = {}   # family name -> Family
_OWNER = {}      # model name -> family name
SHARED_EXPORT_HEADS = ("classifier", "features")  # what every model exports: logits, the backbone's maps


@dataclasses.dataclass(frozen=True)
class TaskHooks:
    """What a model family customises. Every field is optional.

    A hook returns what it wants and changes nothing it is handed: the spine gives it the config and
    ``TrainSetup`` read-only (tests/test_family_hooks.py runs every family's hooks on frozen ones)."""
    loss: Optional[str] = None                      # the loss registered by this name in common.loss;
    #                                                  None: the shared one (cross-entropy)
    check_config: Optional[Callable] = None         # (cfg) -> {key: value} the spine applies first, or None;
    #                                                  raise ConfigError to refuse
    resume_point: Optional[Callable] = None         # (cfg) -> ResumePoint a run without --resume starts after,
    #                                                  or None (epoch 0); read before the datasets are built
    create_train_network: Optional[Callable] = None  # (cfg, net, loss) -> cell(image, label) -> loss
    create_train_sampler: Optional[Callable] = None  # (cfg, rank, group_size, num_samples) -> sampler
    export_network: Optional[Callable] = None       # (cfg, net) -> cell to export
    prepare_eval_net: Optional[Callable] = None     # (cfg, net) -> None, before eval (e.g. GeM p)
    after_eval: Optional[Callable] = None           # (cfg, net, result) -> {metric: value} added to the result
    create_trainer: Optional[Callable] = None       # (cfg, setup) -> common.trainer.Trainer (e.g. THOR)
    predict: Optional[Callable] = None              # (cfg, hooks) -> result, replaces common.predict.predict


@dataclasses.dataclass(frozen=True)
class Family:
    """Everything the spine needs to know about one model family."""
    name: str                      # its folder/package name at the top level ("dla")
    models: tuple                  # registered model names it owns
    default_config: str            # file under <root>/config/, root = the parent of the family folder
    config_keys: dict = field(default_factory=dict)   # {key: (default, help[, range])}
    hooks: object = None           # TaskHooks, or "package.module:NAME" loaded on first use (keeps imports light)
    weight_maps: dict = field(default_factory=dict)   # {"torch"|"paddle": fn(source_key) -> our key | None}
    source_names: dict = field(default_factory=dict)  # {"paddle": {"DLA34": "dla34", ...}}
    checkpoint_optional: tuple = ()  # parameter names a weights file may lack (they keep their configured value)
    export_heads: tuple = ()       # export_head values of its own beside SHARED_EXPORT_HEADS (its export_network
    #                                hook builds them)
    feature_sides: Optional[Callable] = None  # (model, image_size) -> side of each feature_info map: its forward
    #                                pass walked on the side length; raises common.input_size.SizeMismatch where
    #                                the size cannot pass (None: every size is taken)


def register_family(record):
    """Register ``record``; its models must be owned by no other family (that they are registered
    models is checked by ``common.registry`` once it has loaded the families)."""
    for model in record.models:
        owner = _OWNER.get(model)
        if owner is not None and owner != record.name:
            raise ValueError(f"family {record.name}: model {model} is already owned by family {owner}")
    if isinstance(record.hooks, str) and (record.hooks.count(":") != 1 or not all(record.hooks.split(":"))):
        raise ValueError(f"family {record.name}: hooks must be a TaskHooks or 'package.module:NAME', "
                         f"not '{record.hooks}'")
    previous = _FAMILIES.get(record.name)
    if previous is not None:
        for model in previous.models:
            _OWNER.pop(model, None)
    _FAMILIES[record.name] = record
    for model in record.models:
        _OWNER[model] = record.name
    return record


def import_families():
    """Import every model family listed in the top-level ``families.py`` (``FAMILIES = ("dla", ...)``),
    so that its entrypoints and its record are registered.

    Done lazily (not at ``import common``), and by name from that list (plugin discovery), so that
    ``common`` names no family; without a ``families`` module (common used as a bare library) nothing
    is loaded. This module imports nothing of ``common``: the registry and the weight loaders import it."""
    listing = _listing()
    for family in listing.FAMILIES if listing else ():
        importlib.import_module(f"{family}.src")


def _listing():
    """The top-level ``families`` module, or None (common used as a bare library)."""
    try:
        return importlib.import_module("families")
    except ModuleNotFoundError as err:
        if err.name != "families":
            raise
        return None


def default_model():
    """The model of a config that names none: the top-level ``families.DEFAULT_MODEL``, else ''."""
    return getattr(_listing(), "DEFAULT_MODEL", "")


def families():
    """Every registered family record, in registration order."""
    import_families()
    return tuple(_FAMILIES.values())


def family_by_name(name):
    """The record called ``name``, or None."""
    import_families()
    return _FAMILIES.get(name)


def family_of(model):
    """The record owning model ``model``, or None."""
    import_families()
    owner = _OWNER.get(model)
    return _FAMILIES.get(owner) if owner else None


def family_of_net(net):
    """The record of a net built by ``create_model`` (through its ``pretrained_cfg["architecture"]``), or None."""
    pretrained_cfg = getattr(net, "pretrained_cfg", None) or {}
    architecture = pretrained_cfg.get("architecture")
    return family_of(architecture) if architecture else None


def hooks_for(model):
    """The ``TaskHooks`` of ``model``'s family; an empty ``TaskHooks()`` when it has none."""
    record = family_of(model)
    hooks = record.hooks if record else None
    if isinstance(hooks, str):
        module_name, attr = hooks.split(":")
        hooks = getattr(importlib.import_module(module_name), attr)
    return hooks or TaskHooks()


def model_config_keys(model):
    """Config keys ``model``'s family adds: ``{key: (default, help[, range])}`` (range as in
    ``common.config.RANGES``); {} for an unknown model or a family without keys."""
    record = family_of(model)
    return dict(record.config_keys) if record else {}



def export_heads(model=None):
    """The ``export_head`` values ``model`` can export (the shared ones and its family's own); without a
    model, every registered family's."""
    records = [family_of(model)] if model else families()
    return tuple(sorted({*SHARED_EXPORT_HEADS, *(head for record in records if record for head in record.export_heads)}))


def default_config_path(family_dir):
    """``<root>/config/<default_config>`` of the family whose folder is ``family_dir`` (``<root>/<name>``): the
    one place the entry files and the launchers (scripts/default_config.py) take it from."""
    family_dir = os.path.abspath(family_dir)
    name = os.path.basename(family_dir)
    record = family_by_name(name)
    if record is None:
        raise ValueError(f"{family_dir}: no family record '{name}' (is it in the top-level families.py?)")
    return os.path.join(os.path.dirname(family_dir), "config", record.default_config)
