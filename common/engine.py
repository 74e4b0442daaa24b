"""The train / eval / export / predict entry points every model folder delegates to.

A family's record (``common.family``) names its ``TaskHooks`` for what is its own (its loss, its
sampler, the cell to export, its trainer); ``run_main`` picks them by the config's model. Everything
else is shared.
"""
import logging
import os
import sys

from common.config import ConfigError, parse_args, save_args
from common.errors import EXIT_DIVERGED, EXIT_USER_ERROR, DatasetError, Diverged, UserError, WeightsError, find_in_chain
from common.family import TaskHooks, hooks_for  # noqa: F401  (TaskHooks re-exported: families and tests import it here)

_logger = logging.getLogger("common.engine")


def run_main(fn, argv, default_config, hooks=None):
    """Parse the config and run ``fn(cfg, hooks)``; user errors become one line and exit 2.

    ``hooks`` None (every entry file): the hooks of ``cfg.model``'s family, so any family's entry
    point runs any config's model with that model's hooks."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        cfg = parse_args(argv, default_config, hooks.extra_defaults if hooks else None)
        hooks = hooks or hooks_for(cfg.model)
        if hooks.check_config:
            hooks.check_config(cfg)
        from common.adapters import moxing_wrapper  # ModelArts: OBS copies around the run, else a no-op
        return moxing_wrapper(cfg)(fn)(cfg, hooks)
    except (UserError, RuntimeError) as err:
        # MindSpore re-raises a callback's exception inside a RuntimeError of its own: look in the chain
        found = find_in_chain(err, (UserError, Diverged))
        if found is None:
            raise  # a bug: keep the traceback
        print(f"error: {getattr(found, 'message', None) or found}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_DIVERGED if isinstance(found, Diverged) else EXIT_USER_ERROR) from None


# --------------------------------------------------------------------------- building blocks
# build_net, build_backbone, init_device, metrics and _single (single_device) live in common.runtime so that
# common.predict and the families' task modules need not import this module; the names stay importable here.
from common.runtime import METRIC_NAMES, build_backbone, build_net, init_device, metrics  # noqa: E402,F401
from common.runtime import single_device as _single  # noqa: E402


def create_loss(cfg, net, hooks):
    from common.loss import CrossEntropySmooth
    if hooks.create_loss:
        return hooks.create_loss(cfg, net)
    return CrossEntropySmooth(cfg.label_smooth_factor, cfg.num_classes)


# --------------------------------------------------------------------------- train
# train = setup_training -> a trainer (the family's ``create_trainer`` hook, else common.trainer's
# model_trainer) -> training_callbacks -> fit. A trainer only brings its network, optimizer and step
# loop: resume, EMA, counters, checkpoints, eval and the order of the checks are the same for every trainer.
from common.trainer import AMP_LEVELS, TrainSetup, Trainer, _loss_scale_manager, eval_model, model_trainer  # noqa: E402,F401


def train(cfg, hooks):
    setup = setup_training(cfg, hooks)
    trainer = (hooks.create_trainer or model_trainer)(cfg, setup)
    callbacks, eval_cb, ema = training_callbacks(cfg, setup, trainer)
    fit(cfg, setup, trainer, callbacks)
    return {"best": eval_cb.best if eval_cb else None, "history": eval_cb.history if eval_cb else [],
            "ema_best": eval_cb.averaged.best if eval_cb and ema else None,
            "ckpt_dir": setup.ckpt_dir, "rank": setup.rank, "net": setup.net, "ema": ema}


def setup_training(cfg, hooks):
    """Checks, output dir, device, resume point, net, datasets, steps, loss and lr; writes nothing."""
    import mindspore as ms
    from common.lr import create_lr_schedule
    from common.outputs import check_new_training_run

    if cfg.require_pretrained and not (cfg.pretrained or cfg.resume):
        raise ConfigError("config error: this recipe finetunes trained weights: pass --pretrained PATH "
                          "(.ckpt/.pth/.pdparams/.safetensors) or --resume PATH; "
                          "--require_pretrained False trains from scratch")
    if cfg.ema_decay and cfg.dataset_sink_mode and cfg.device_target != "CPU":
        raise ConfigError("config error: ema_decay updates the average after every step; dataset_sink_mode "
                          "True runs a whole epoch per callback: use --dataset_sink_mode False with EMA")
    out_dir = os.path.abspath(cfg.output_dir)
    check_new_training_run(out_dir, cfg.resume)  # an earlier run's files are never overwritten
    rank, group_size = init_device(cfg)
    ckpt_dir = os.path.join(out_dir, f"ckpt_{rank}") if group_size > 1 else os.path.join(out_dir, "ckpt")
    if cfg.deterministic:
        ms.set_deterministic(True)
    from common import global_batch as gb
    from common.training_state import ResumePoint, read_resume_point
    accumulation = gb.accumulation_steps(cfg)
    # a resumed run continues after the checkpoint's epoch (and step): the data order from there on
    point = read_resume_point(cfg.resume, cfg, group_size) if cfg.resume else ResumePoint()
    if point.within and cfg.dataset_sink_mode:
        raise ConfigError(f"config error: {cfg.resume} was saved mid-epoch; resuming it needs dataset_sink_mode False")

    net = build_net(cfg, "" if cfg.resume else cfg.pretrained, allow_new_head=True)
    train_ds, rest_ds, batches = _train_datasets(cfg, hooks, rank, group_size, point, accumulation)
    steps = batches // accumulation  # optimizer steps per epoch: what the lr schedule counts
    lr_cfg, lr_warning = gb.lr_config(cfg, group_size)
    lr = create_lr_schedule(lr_cfg, steps)
    return TrainSetup(hooks=hooks, out_dir=out_dir, ckpt_dir=ckpt_dir, rank=rank, group_size=group_size,
                      point=point, accumulation=accumulation, net=net, loss=create_loss(cfg, net, hooks),
                      train_ds=train_ds,
                      rest_ds=rest_ds, batches=batches, steps=steps, lr_cfg=lr_cfg, lr_warning=lr_warning, lr=lr)


def training_callbacks(cfg, setup, trainer):
    """(callbacks, eval callback or None, EMA or None), after restoring a --resume checkpoint into the trainer."""
    from common import global_batch as gb
    from common.callbacks import CheckpointSaver, EvalCallback, ProgressLogger
    from common.ema import EMA, EMAUpdate

    net, rank, group_size, accumulation = setup.net, setup.rank, setup.group_size, setup.accumulation
    ema = EMA(net, cfg.ema_decay) if cfg.ema_decay else None
    if cfg.resume:
        resume_training(trainer.train_network, cfg.resume, setup.point.epoch, ema)
        _set_optimizer_step(trainer.optimizer, setup.point, setup.steps, group_size, rank)

    callbacks = [ProgressLogger(trainer.lr, gb.global_batch(cfg, group_size), cfg.log_interval, rank,
                                accumulation=accumulation)]
    if ema is not None:
        callbacks.append(EMAUpdate(ema, accumulation))  # before the savers and eval, which read the average
    if group_size > 1 and cfg.eval_during_train:  # before the savers: they save what every rank evaluates
        from common.distributed_eval import average_batchnorm_stats
        callbacks.append(average_batchnorm_stats(net, group_size))
    if cfg.save_checkpoint:
        run_info = {"device_num": group_size, "batch_size": cfg.batch_size, "gradient_accumulation_steps": accumulation}
        callbacks.append(CheckpointSaver(setup.ckpt_dir, cfg.model, cfg.save_checkpoint_epochs,
                                         cfg.keep_checkpoint_max, rank, ema=ema,
                                         every_steps=cfg.save_checkpoint_steps, run_info=run_info))
    eval_cb = None
    if cfg.eval_during_train:
        val_ds, reduce_fn = _val_for_training(cfg, rank, group_size)
        eval_cb = EvalCallback(trainer.eval_model, val_ds, net, setup.ckpt_dir, cfg.eval_interval, rank, ema=ema,
                               reduce_fn=reduce_fn)
        callbacks.append(eval_cb)
    return callbacks, eval_cb, ema


def fit(cfg, setup, trainer, callbacks):
    """Write config.yaml (everything is checked by now), print the start line and train."""
    from common import global_batch as gb
    from common.callbacks import RunCounters

    rank, group_size, point = setup.rank, setup.group_size, setup.point
    initial_epoch = point.epoch
    save_args(cfg, os.path.join(setup.out_dir, "config.yaml"), rank)  # only now: config, data and weights are checked
    if rank == 0:
        start = f"epochs {initial_epoch + 1}..{cfg.epoch_size}" + (
            f" (epoch {initial_epoch + 1} from step {point.within + 1})" if point.within else "")
        print(f"training {cfg.model}{trainer.label} on {cfg.device_target} x{group_size}: {setup.steps} steps/epoch, "
              f"{start}, batch {cfg.batch_size}/device, global batch {gb.describe(cfg, group_size)}, "
              f"lr {setup.lr_cfg.lr:g}, output {setup.out_dir}", flush=True)
        if setup.lr_warning:
            print(setup.lr_warning, flush=True)
    if setup.rest_ds is not None:  # the checkpoint's epoch from its step on, counted as the whole run's
        skip_batches = point.within * setup.accumulation  # batches of the first epoch already trained
        trainer.fit(initial_epoch + 1, setup.rest_ds,
                    [RunCounters(initial_epoch, skip_batches, setup.batches, cfg.epoch_size), *callbacks],
                    initial_epoch, False)
        initial_epoch += 1
    if initial_epoch < cfg.epoch_size:
        trainer.fit(cfg.epoch_size, setup.train_ds, [RunCounters(initial_epoch), *callbacks], initial_epoch,
                    cfg.dataset_sink_mode)


def _train_datasets(cfg, hooks, rank, group_size, point, accumulation):
    """(dataset from the first whole epoch on, the rest of a mid-epoch checkpoint's epoch or None,
    batches per epoch). An epoch ends on an optimizer step: batches that do not fill one are left out."""
    from common.data import create_dataset, dataset_samples
    from common.training_state import check_steps_per_epoch
    sampler = None
    if hooks.create_train_sampler:
        sampler = hooks.create_train_sampler(cfg, rank, group_size, len(dataset_samples(cfg, "train")))

    def dataset(start_epoch, skip_batches=0):
        return create_dataset(cfg, "train", rank, group_size, sampler=sampler, start_epoch=start_epoch,
                              skip_samples=skip_batches * cfg.batch_size)

    train_ds = dataset(point.epoch + (1 if point.within else 0))
    full = train_ds.get_dataset_size()
    batches = full // accumulation * accumulation
    if batches == 0:
        raise DatasetError("the training split gives no full batch" + (
            f" x {accumulation} accumulation steps" if accumulation > 1 else "") + "; lower --batch_size")
    if batches != full:
        train_ds = _take(train_ds, batches)
    if cfg.resume:
        check_steps_per_epoch(point, cfg.resume, batches // accumulation)
    if not point.within:
        return train_ds, None, batches
    done = point.within * accumulation
    return train_ds, _take(dataset(point.epoch, done), batches - done), batches


def _take(dataset, batches):
    """``dataset.take(batches)`` with its size set: MindSpore would read an epoch to count it."""
    taken = dataset.take(batches)
    taken.dataset_size = min(batches, dataset.get_dataset_size())
    return taken


def _set_optimizer_step(optimizer, point, steps, group_size, rank):
    """Point the optimizer's step (the lr schedule's index) at this run's resume point."""
    import numpy as np
    import mindspore as ms
    from common.training_state import describe_mapping, optimizer_step
    step = optimizer.global_step
    step.set_data(ms.Tensor(np.full(step.shape, optimizer_step(point, steps)), step.dtype))
    line = describe_mapping(point, steps, group_size)
    if line and rank == 0:
        print(line, flush=True)


def _val_for_training(cfg, rank, group_size):
    """(val dataset, reduce_fn) for eval during training: each rank its shard, summed, when distributed."""
    from common.data import create_dataset
    if group_size == 1:
        return create_dataset(cfg, "val"), None
    from common.distributed_eval import ShardedEval, sharded_val_dataset
    dataset, local, _ = sharded_val_dataset(cfg, rank, group_size)
    return dataset, ShardedEval(local)


def resume_training(train_network, path, epoch, ema=None):
    """Restore weights, optimizer state (momentum, global step, loss scale) and the EMA from a
    training checkpoint. The lr schedule itself is rebuilt from the config (so --epoch_size may grow)."""
    import mindspore as ms
    from common.accumulation import STATE_PREFIXES
    from common.weights import load_checkpoint_file
    params = {k: v for k, v in load_checkpoint_file(path).items() if k != "learning_rate"}
    try:
        not_loaded, _ = ms.load_param_into_net(train_network, params, strict_load=True)
    except (ValueError, RuntimeError, TypeError) as err:  # shapes of another model: MindSpore's long text
        raise WeightsError(f"{path} is not a training checkpoint of this model/optimizer: "
                           f"{_first_line(err)}") from None
    # an accumulation buffer a checkpoint lacks (saved without accumulation) is empty at an optimizer step
    not_loaded = [n for n in not_loaded if "scale_sense" not in n and n != "learning_rate"
                  and not n.startswith(STATE_PREFIXES)]
    if not_loaded:
        raise WeightsError(f"{path} is not a training checkpoint of this model/optimizer; "
                           f"missing: {', '.join(not_loaded[:6])}")
    if ema is not None:
        ema.load(params, path)
    print(f"resumed from {path} after epoch {epoch}", flush=True)


def _first_line(err):
    lines = [line.strip() for line in str(err).splitlines() if line.strip() and not line.startswith("-")]
    return lines[0][:300] if lines else type(err).__name__


# --------------------------------------------------------------------------- eval
def evaluate(cfg, hooks):
    from mindspore.train import Model
    from common.data import create_dataset

    if not cfg.ckpt_file:
        raise UserError("no checkpoint to evaluate: pass --ckpt_file PATH")
    from common.predict import evaluate_exported, is_exported
    if is_exported(cfg.ckpt_file, cfg.backend):  # .mindir / .onnx: run the file, not the registry's net
        return evaluate_exported(cfg, hooks)
    # run_distribute (under msrun / a launcher): each rank evaluates its shard, the counts are summed
    rank, group_size = init_device(cfg if cfg.run_distribute else _single(cfg))
    net = build_net(cfg, cfg.ckpt_file)
    net.set_train(False)
    if hooks.prepare_eval_net:
        hooks.prepare_eval_net(cfg, net)
    model = Model(net, loss_fn=create_loss(cfg, net, hooks), metrics=metrics())
    if group_size > 1:
        from common.distributed_eval import sharded_val_dataset, sum_over_ranks
        dataset, local, total = sharded_val_dataset(cfg, rank, group_size)
        raw = sum_over_ranks(model.eval(dataset, dataset_sink_mode=False), local)
        print(f"rank {rank} of {group_size} evaluated {local} of {total} images", flush=True)
    else:
        raw = model.eval(create_dataset(cfg, "val"), dataset_sink_mode=False)
    result = {k: float(raw[k]) for k in METRIC_NAMES}
    print(f"result: {result} ckpt= {os.path.abspath(cfg.ckpt_file)}", flush=True)
    if hooks.after_eval and rank == 0:  # e.g. MultiGrain's retrieval: whole splits, once
        hooks.after_eval(cfg, net, result)
    return result


# --------------------------------------------------------------------------- export
EXPORT_FORMATS = ("MINDIR", "ONNX", "AIR")


def export(cfg, hooks):
    import numpy as np
    import mindspore as ms
    from common.checkpoint import write_atomic
    from common.outputs import make_output_dir

    fmt = cfg.file_format.upper()
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"file_format must be one of {', '.join(EXPORT_FORMATS)}, not '{cfg.file_format}'")
    if fmt == "AIR" and cfg.device_target != "Ascend":
        raise UserError("AIR export needs an Ascend device (--device_target Ascend with MindSpore for Ascend); "
                        "on CPU/GPU export MINDIR or ONNX")
    if not cfg.ckpt_file:
        raise UserError("no checkpoint to export: pass --ckpt_file PATH")
    if cfg.export_head not in ("classifier", "features") and not hooks.export_network:
        raise UserError(f"export_head must be classifier or features for {cfg.model}, not '{cfg.export_head}'")
    init_device(_single(cfg))
    if cfg.export_head == "features":  # the backbone: one output per feature map
        cell = build_backbone(cfg, cfg.ckpt_file)
    else:
        net = build_net(cfg, cfg.ckpt_file)
        net.set_train(False)
        cell = hooks.export_network(cfg, net) if hooks.export_network else net
    cell.set_train(False)
    file_name = cfg.file_name or os.path.join(cfg.output_dir, cfg.model)
    suffix = {"MINDIR": ".mindir", "ONNX": ".onnx", "AIR": ".air"}[fmt]
    path = os.path.abspath(file_name if file_name.endswith(suffix) else file_name + suffix)
    make_output_dir(os.path.dirname(path))
    dummy = ms.Tensor(np.zeros((cfg.export_batch_size, 3, cfg.image_size, cfg.image_size), np.float32))
    # like a checkpoint: a temporary file renamed into place (a full disk leaves no partial file)
    write_atomic(path, lambda tmp: ms.export(cell, dummy, file_name=tmp, file_format=fmt))
    what = cfg.model + (f" backbone, maps {[f['index'] for f in cell.feature_info]}"
                        if cfg.export_head == "features" else "")
    print(f"exported {what} ({cfg.export_batch_size}x3x{cfg.image_size}x{cfg.image_size}) to {path}", flush=True)
    return path


# --------------------------------------------------------------------------- entry points
def train_main(argv=None, default_config="", hooks=None):
    return run_main(train, argv, default_config, hooks)


def eval_main(argv=None, default_config="", hooks=None):
    return run_main(evaluate, argv, default_config, hooks)


def export_main(argv=None, default_config="", hooks=None):
    return run_main(export, argv, default_config, hooks)


def predict(cfg, hooks):
    """predict.py: the family's own predict when it has one (MultiGrain: embeddings too), else top-k classes."""
    from common.predict import predict as predict_classes
    return (hooks.predict or predict_classes)(cfg, hooks)


def predict_main(argv=None, default_config="", hooks=None):
    return run_main(predict, argv, default_config, hooks)
