"""The four tasks every model folder's entry files run, and the one way into them.

    run_main     argv -> config (``common.config``) -> the config's model's family hooks -> their
                 config overrides (``check_config``) -> the task on the settled, read-only config;
                 a user error becomes one line ``error: ...`` and exit code 2
    train        ``common.train``: setup -> a trainer (``common.trainer``) -> callbacks -> fit
    evaluate     ``common.evaluate``: top-1/top-5 of a checkpoint or an exported file
    export       ``common.export``: MINDIR / ONNX / AIR of the net, its family's head or the backbone
    predict      ``common.predict``: top-k classes of images (or the family's own predict)

A family's record (``common.family``) names its ``TaskHooks`` for what is its own (its loss, sampler,
trainer, exported cell, extra metrics); everything else is shared.
"""
import logging
import sys

from common.errors import (EXIT_DIVERGED, EXIT_PREEMPTED, EXIT_USER_ERROR, Diverged, Preempted, UserError,
                           find_in_chain)
from common.evaluate import evaluate
from common.export import export
from common.train import train


def run_main(fn, argv, default_config, hooks=None):
    """Parse the config and run ``fn(cfg, hooks)``; user errors become one line and exit 2.

    ``hooks`` None (every entry file): the hooks of ``cfg.model``'s family, so any family's entry
    point runs any config's model with that model's hooks."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        cfg, hooks = settle_config(argv, default_config, hooks)
        from common.adapters import moxing_wrapper  # ModelArts: OBS copies around the run, else a no-op
        from common.config import ReadOnlyConfig
        # read-only from here on: the adapter has set its local paths; a hook returns what it wants instead
        return moxing_wrapper(cfg)(lambda: fn(ReadOnlyConfig(cfg), hooks))()
    except (UserError, RuntimeError, Preempted) as err:
        # MindSpore re-raises a callback's exception inside a RuntimeError of its own: look in the chain
        found = find_in_chain(err, (UserError, Diverged, Preempted))
        if found is None:
            raise  # a bug: keep the traceback
        if isinstance(found, Preempted):  # not an error: the checkpoint and the command that continues
            print(found, file=sys.stderr, flush=True)
            raise SystemExit(EXIT_PREEMPTED) from None
        print(f"error: {getattr(found, 'message', None) or found}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_DIVERGED if isinstance(found, Diverged) else EXIT_USER_ERROR) from None


def settle_config(argv, default_config, hooks=None):
    """(config, hooks): the parsed config with what its family's ``check_config`` returns applied, and its
    ``image_size`` checked against the model's strides (``common.input_size``), before anything is built
    or written."""
    from common.config import ReadOnlyConfig, parse_args
    from common.family import hooks_for
    cfg = parse_args(argv, default_config)
    hooks = hooks or hooks_for(cfg.model)
    overrides = (hooks.check_config(ReadOnlyConfig(cfg)) if hooks.check_config else None) or {}
    unknown = sorted(set(overrides) - set(cfg))
    if unknown:  # a hook's bug, not the user's
        raise ValueError(f"{cfg.model}'s check_config returned keys the config does not have: {', '.join(unknown)}")
    cfg.update(overrides)
    from common.input_size import check_config_image_size
    check_config_image_size(cfg)  # a size the net's strides cannot take: one line now, not a shape error deep in MindSpore
    return cfg, hooks


def predict(cfg, hooks):
    """predict.py: the family's own predict when it has one (MultiGrain: embeddings too), else top-k classes."""
    from common.predict import predict as predict_classes
    return (hooks.predict or predict_classes)(cfg, hooks)


# --------------------------------------------------------------------------- entry points (common.cli)
def train_main(argv=None, default_config="", hooks=None):
    return run_main(train, argv, default_config, hooks)


def eval_main(argv=None, default_config="", hooks=None):
    return run_main(evaluate, argv, default_config, hooks)


def export_main(argv=None, default_config="", hooks=None):
    return run_main(export, argv, default_config, hooks)


def predict_main(argv=None, default_config="", hooks=None):
    return run_main(predict, argv, default_config, hooks)
