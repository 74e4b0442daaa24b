"""The train / eval / export / predict entry points every model folder delegates to.

A family passes ``TaskHooks`` for what is its own (extra config keys, its loss, its sampler,
the cell to export); everything else is shared.
"""
import dataclasses
import logging
import os
import sys
from typing import Callable, Optional

from common.config import ConfigError, parse_args, save_args
from common.convert import WeightsError
from common.data.samples import DatasetError

_logger = logging.getLogger("common.engine")
METRIC_NAMES = ("top_1_accuracy", "top_5_accuracy")


@dataclasses.dataclass
class TaskHooks:
    """What a model family customises. Every field is optional."""
    extra_defaults: Optional[dict] = None          # {key: (default, help)} added to the config
    create_loss: Optional[Callable] = None          # (cfg, net) -> loss cell(logits, label)
    create_train_network: Optional[Callable] = None  # (cfg, net, loss) -> cell(image, label) -> loss
    create_train_sampler: Optional[Callable] = None  # (cfg, rank, group_size, num_samples) -> sampler
    export_network: Optional[Callable] = None       # (cfg, net) -> cell to export
    check_config: Optional[Callable] = None         # (cfg) -> None, raise ConfigError
    prepare_eval_net: Optional[Callable] = None     # (cfg, net) -> None, before eval (e.g. GeM p)
    after_eval: Optional[Callable] = None           # (cfg, net, result) -> None, e.g. retrieval metrics


class UserError(Exception):
    """An error the user can fix, printed as one line."""


def run_main(fn, argv, default_config, hooks):
    """Parse the config and run ``fn(cfg, hooks)``; user errors become one line and exit 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    hooks = hooks or TaskHooks()
    try:
        cfg = parse_args(argv, default_config, hooks.extra_defaults)
        if hooks.check_config:
            hooks.check_config(cfg)
        from common.adapters import moxing_wrapper  # ModelArts: OBS copies around the run, else a no-op
        return moxing_wrapper(cfg)(fn)(cfg, hooks)
    except (ConfigError, DatasetError, WeightsError, UserError, FileNotFoundError) as err:
        print(f"error: {getattr(err, 'message', None) or err}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except RuntimeError as err:
        from common.callbacks import NonFiniteLoss
        if isinstance(err, NonFiniteLoss) or isinstance(err.__cause__, NonFiniteLoss):
            print(f"error: {err}", file=sys.stderr, flush=True)
            raise SystemExit(3) from None
        raise


# --------------------------------------------------------------------------- building blocks
def build_net(cfg, checkpoint="", allow_new_head=False):
    from common.checkpoint import load_weights
    from common.registry import create_model
    kwargs = {"drop_rate": cfg.drop_rate} if cfg.drop_rate else {}
    try:
        net = create_model(cfg.model, num_classes=cfg.num_classes, **kwargs)
    except ValueError as err:
        raise UserError(str(err)) from None
    if checkpoint:
        load_weights(net, checkpoint, arch=cfg.model, allow_new_head=allow_new_head)
    return net


def create_loss(cfg, net, hooks):
    from common.loss import CrossEntropySmooth
    if hooks.create_loss:
        return hooks.create_loss(cfg, net)
    return CrossEntropySmooth(cfg.label_smooth_factor, cfg.num_classes)


def metrics():
    from mindspore.train import Top1CategoricalAccuracy, Top5CategoricalAccuracy
    return {"top_1_accuracy": Top1CategoricalAccuracy(), "top_5_accuracy": Top5CategoricalAccuracy()}


def init_device(cfg):
    from common.device import init_context
    return init_context(cfg.device_target, cfg.mode, cfg.run_distribute, cfg.device_id, cfg.seed)


# O0/O2/O3 train on CPU in MindSpore 2.10 (tests/test_recipe_amp.py), with a fixed loss scale
# only: Model refuses a dynamic one (or overflow-dropping) on CPU. O1 is refused: it rewrites
# the network with mindspore.rewrite, which fails on these models ("Input args are invalid.").
AMP_LEVELS = ("O0", "O2", "O3")


def _loss_scale_manager(cfg):
    """(manager, the loss scale the optimizer divides by) for ``amp_level``/``loss_scale``/``loss_scale_mode``."""
    from mindspore.amp import DynamicLossScaleManager, FixedLossScaleManager
    if cfg.amp_level not in AMP_LEVELS:
        raise ConfigError(f"config error: amp_level must be one of {', '.join(AMP_LEVELS)}, not '{cfg.amp_level}'"
                          + (" (O1 rewrites the network and fails on these models in MindSpore 2.10)"
                             if cfg.amp_level == "O1" else ""))
    if cfg.loss_scale < 1.0:
        raise ConfigError(f"config error: loss_scale must be >= 1, got {cfg.loss_scale}")
    if cfg.loss_scale_mode == "dynamic":
        if cfg.device_target == "CPU":
            raise ConfigError("config error: loss_scale_mode dynamic is not supported on CPU by MindSpore "
                              "(only a fixed loss scale); use --loss_scale_mode fixed")
        return DynamicLossScaleManager(init_loss_scale=cfg.loss_scale), 1.0
    if cfg.loss_scale_mode != "fixed":
        raise ConfigError(f"config error: loss_scale_mode must be fixed or dynamic, not '{cfg.loss_scale_mode}'")
    return FixedLossScaleManager(cfg.loss_scale, drop_overflow_update=False), cfg.loss_scale


# --------------------------------------------------------------------------- train
def train(cfg, hooks):
    import mindspore as ms
    from mindspore import nn
    from mindspore.train import Model
    from common.callbacks import CheckpointSaver, EvalCallback, ProgressLogger, RunCounters
    from common.data import create_dataset
    from common.ema import EMA, EMAUpdate
    from common.lr import create_lr_schedule
    from common.optim import create_optimizer

    if cfg.require_pretrained and not (cfg.pretrained or cfg.resume):
        raise ConfigError("config error: this recipe finetunes trained weights: pass --pretrained PATH "
                          "(.ckpt/.pth/.pdparams/.safetensors) or --resume PATH; "
                          "--require_pretrained False trains from scratch")
    if cfg.ema_decay and cfg.dataset_sink_mode and cfg.device_target != "CPU":
        raise ConfigError("config error: ema_decay updates the average after every step; dataset_sink_mode "
                          "True runs a whole epoch per callback: use --dataset_sink_mode False with EMA")
    rank, group_size = init_device(cfg)
    out_dir = os.path.abspath(cfg.output_dir)
    ckpt_dir = os.path.join(out_dir, f"ckpt_{rank}") if group_size > 1 else os.path.join(out_dir, "ckpt")
    save_args(cfg, os.path.join(out_dir, "config.yaml"), rank)
    if cfg.deterministic:
        ms.set_deterministic(True)
    # a resumed run continues after the checkpoint's epoch: the data order of that epoch on
    initial_epoch = resume_epoch(cfg.resume, cfg.epoch_size) if cfg.resume else 0

    net = build_net(cfg, "" if cfg.resume else cfg.pretrained, allow_new_head=True)
    sampler = None
    if hooks.create_train_sampler:
        from common.data import dataset_samples
        sampler = hooks.create_train_sampler(cfg, rank, group_size, len(dataset_samples(cfg, "train")))
    train_ds = create_dataset(cfg, "train", rank, group_size, sampler=sampler, start_epoch=initial_epoch)
    steps = train_ds.get_dataset_size()
    if steps == 0:
        raise DatasetError("the training split gives no full batch; lower --batch_size")
    lr = create_lr_schedule(cfg, steps)
    manager, opt_scale = _loss_scale_manager(cfg)
    loss = create_loss(cfg, net, hooks)
    train_params = net.trainable_params() + (loss.trainable_params() if isinstance(loss, nn.Cell) else [])
    optimizer = create_optimizer(train_params, cfg, lr, loss_scale=opt_scale)
    model_kwargs = dict(optimizer=optimizer, metrics=metrics(), amp_level=cfg.amp_level,
                        loss_scale_manager=manager)
    if hooks.create_train_network:
        train_net = hooks.create_train_network(cfg, net, loss)
        model = Model(train_net, eval_network=nn.WithEvalCell(net, loss), eval_indexes=[0, 1, 2], **model_kwargs)
    else:
        model = Model(net, loss_fn=loss, **model_kwargs)

    ema = EMA(net, cfg.ema_decay) if cfg.ema_decay else None
    if cfg.resume:
        resume_training(model, cfg.resume, initial_epoch, ema)

    callbacks = [RunCounters(initial_epoch), ProgressLogger(lr, cfg.batch_size * group_size, cfg.log_interval, rank)]
    if ema is not None:
        callbacks.append(EMAUpdate(ema))  # before the savers and eval, which read the average
    if cfg.save_checkpoint:
        callbacks.append(CheckpointSaver(ckpt_dir, cfg.model, cfg.save_checkpoint_epochs,
                                         cfg.keep_checkpoint_max, rank, ema=ema))
    eval_cb = None
    if cfg.eval_during_train:
        eval_cb = EvalCallback(model, create_dataset(cfg, "val"), net, ckpt_dir, cfg.eval_interval, rank, ema=ema)
        callbacks.append(eval_cb)
    if rank == 0:
        print(f"training {cfg.model} on {cfg.device_target} x{group_size}: {steps} steps/epoch, "
              f"epochs {initial_epoch + 1}..{cfg.epoch_size}, batch {cfg.batch_size}/device, "
              f"output {out_dir}", flush=True)
    model.train(cfg.epoch_size, train_ds, callbacks=callbacks, dataset_sink_mode=cfg.dataset_sink_mode,
                initial_epoch=initial_epoch)
    return {"best": eval_cb.best if eval_cb else None, "history": eval_cb.history if eval_cb else [],
            "ema_best": eval_cb.averaged.best if eval_cb and ema else None,
            "ckpt_dir": ckpt_dir, "rank": rank, "net": net, "ema": ema}


def resume_epoch(path, epoch_size):
    """The epoch a training checkpoint finished (read before anything is built)."""
    from common.checkpoint import read_training_state
    if not os.path.isfile(path):
        raise FileNotFoundError(f"resume checkpoint not found: {path}")
    epoch = read_training_state(path)["epoch_num"]
    if epoch >= epoch_size:
        raise UserError(f"{path} already finished epoch {epoch} of {epoch_size}; raise --epoch_size to go on")
    return epoch


def resume_training(model, path, epoch, ema=None):
    """Restore weights, optimizer state (momentum, global step, loss scale) and the EMA from a
    training checkpoint. The lr schedule itself is rebuilt from the config (so --epoch_size may grow)."""
    import mindspore as ms
    params = {k: v for k, v in ms.load_checkpoint(path).items() if k != "learning_rate"}
    not_loaded, _ = ms.load_param_into_net(model.train_network, params, strict_load=True)
    not_loaded = [n for n in not_loaded if "scale_sense" not in n and n != "learning_rate"]
    if not_loaded:
        raise WeightsError(f"{path} is not a training checkpoint of this model/optimizer; "
                           f"missing: {', '.join(not_loaded[:6])}")
    if ema is not None:
        ema.load(params, path)
    print(f"resumed from {path} after epoch {epoch}", flush=True)


# --------------------------------------------------------------------------- eval
def evaluate(cfg, hooks):
    from mindspore.train import Model
    from common.data import create_dataset

    if not cfg.ckpt_file:
        raise UserError("no checkpoint to evaluate: pass --ckpt_file PATH")
    init_device(_single(cfg))
    net = build_net(cfg, cfg.ckpt_file)
    net.set_train(False)
    if hooks.prepare_eval_net:
        hooks.prepare_eval_net(cfg, net)
    model = Model(net, loss_fn=create_loss(cfg, net, hooks), metrics=metrics())
    raw = model.eval(create_dataset(cfg, "val"), dataset_sink_mode=False)
    result = {k: float(raw[k]) for k in METRIC_NAMES}
    print(f"result: {result} ckpt= {os.path.abspath(cfg.ckpt_file)}", flush=True)
    if hooks.after_eval:
        hooks.after_eval(cfg, net, result)
    return result


def _single(cfg):
    cfg = type(cfg)(cfg)
    cfg.run_distribute = False
    return cfg


# --------------------------------------------------------------------------- export
EXPORT_FORMATS = ("MINDIR", "ONNX", "AIR")


def export(cfg, hooks):
    import numpy as np
    import mindspore as ms

    fmt = cfg.file_format.upper()
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"file_format must be one of {', '.join(EXPORT_FORMATS)}, not '{cfg.file_format}'")
    if fmt == "AIR" and cfg.device_target != "Ascend":
        raise UserError("AIR export needs an Ascend device (--device_target Ascend with MindSpore for Ascend); "
                        "on CPU/GPU export MINDIR or ONNX")
    if not cfg.ckpt_file:
        raise UserError("no checkpoint to export: pass --ckpt_file PATH")
    init_device(_single(cfg))
    net = build_net(cfg, cfg.ckpt_file)
    net.set_train(False)
    cell = hooks.export_network(cfg, net) if hooks.export_network else net
    file_name = cfg.file_name or os.path.join(cfg.output_dir, cfg.model)
    os.makedirs(os.path.dirname(os.path.abspath(file_name)) or ".", exist_ok=True)
    dummy = ms.Tensor(np.zeros((cfg.export_batch_size, 3, cfg.image_size, cfg.image_size), np.float32))
    ms.export(cell, dummy, file_name=file_name, file_format=fmt)
    suffix = {"MINDIR": ".mindir", "ONNX": ".onnx", "AIR": ".air"}[fmt]
    path = file_name if file_name.endswith(suffix) else file_name + suffix
    print(f"exported {cfg.model} ({cfg.export_batch_size}x3x{cfg.image_size}x{cfg.image_size}) to {path}", flush=True)
    return path


# --------------------------------------------------------------------------- entry points
def train_main(argv=None, default_config="", hooks=None):
    return run_main(train, argv, default_config, hooks)


def eval_main(argv=None, default_config="", hooks=None):
    return run_main(evaluate, argv, default_config, hooks)


def export_main(argv=None, default_config="", hooks=None):
    return run_main(export, argv, default_config, hooks)


def predict_main(argv=None, default_config="", hooks=None):
    from common.predict import predict
    return run_main(predict, argv, default_config, hooks)
