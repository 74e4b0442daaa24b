"""The train task: setup -> a trainer -> callbacks -> fit, each step once, in that order.

``setup_training`` checks the config, the output folder, the device, the resume point, the net, the
datasets, the lr and the loss, and writes nothing; a trainer (the family's ``create_trainer`` hook, else
``common.trainer.model_trainer``) brings only its network, optimizer and step loop; ``training_callbacks``
restores a ``--resume`` checkpoint into it and adds progress, EMA, checkpoints and eval; ``fit`` writes
config.yaml and trains. Resume, EMA, counters, checkpoints and eval are the same for every trainer."""
import os

from common.errors import ConfigError, DatasetError
from common.runtime import init_device


def train(cfg, hooks):
    """The run holds ``output_dir``'s lock (``common.run_lock``) from before its checks to its end."""
    from common.device import rank_info
    from common.outputs import check_output_dir
    from common.run_lock import output_lock
    out_dir = os.path.abspath(cfg.output_dir)
    check_output_dir(out_dir)
    if os.environ.get("MS_ROLE") == "MS_SCHED":  # msrun's scheduler runs this script too but trains nothing:
        return _train(cfg, hooks)              # it would take rank 0's lock (its rank reads as 0) and refuse rank 0
    with output_lock(out_dir, rank_info()[0] if cfg.run_distribute else 0):
        return _train(cfg, hooks)


def _train(cfg, hooks):
    from common.preemption import Preemption
    from common.run_record import tee_output
    from common.trainer import model_trainer
    setup = setup_training(cfg, hooks)
    with tee_output(setup.out_dir, setup.rank, setup.group_size) as log:  # train.log: every line from here on
        trainer = (hooks.create_trainer or model_trainer)(cfg, setup)
        callbacks, eval_cb, ema = training_callbacks(cfg, setup, trainer)
        preemption = next(c for c in callbacks if isinstance(c, Preemption))
        with preemption.installed():  # SIGTERM: a checkpoint at the next step, exit 143 (common.preemption)
            fit(cfg, setup, trainer, callbacks, log)
    return {"best": eval_cb.best if eval_cb else None, "history": eval_cb.history if eval_cb else [],
            "ema_best": eval_cb.averaged.best if eval_cb and ema else None,
            "ckpt_dir": setup.ckpt_dir, "rank": setup.rank, "net": setup.net, "ema": ema}


def setup_training(cfg, hooks):
    """Checks, output dir, device, resume point, net, datasets, steps, loss and lr; writes nothing (but
    the run's lock, ``train`` holds it)."""
    import mindspore as ms
    from common import global_batch as gb
    from common.loss import create_loss
    from common.lr import create_lr_schedule
    from common.outputs import check_new_training_run
    from common.run_record import check_tensorboard
    from common.runtime import build_net
    from common.trainer import TrainSetup

    if cfg.require_pretrained and not (cfg.pretrained or cfg.resume):
        raise ConfigError("config error: this recipe finetunes trained weights: pass --pretrained PATH "
                          "(.ckpt/.pth/.pdparams/.safetensors) or --resume PATH; "
                          "--require_pretrained False trains from scratch")
    if cfg.ema_decay and cfg.dataset_sink_mode and cfg.device_target != "CPU":
        raise ConfigError("config error: ema_decay updates the average after every step; dataset_sink_mode "
                          "True runs a whole epoch per callback: use --dataset_sink_mode False with EMA")
    check_tensorboard(cfg)
    if cfg.ckpt_save_policy == "top_k" and cfg.save_checkpoint and not cfg.eval_during_train:
        raise ConfigError("config error: ckpt_save_policy top_k keeps the checkpoints with the best eval top-1: "
                          "it needs --eval_during_train True (or use latest_k)")
    from common.distill import check_distill_family, distill_enabled, distill_network
    distilling = distill_enabled(cfg)
    if distilling:
        check_distill_family(cfg, hooks)
    out_dir = os.path.abspath(cfg.output_dir)
    check_new_training_run(out_dir, cfg.resume)  # an earlier run's files are never overwritten
    rank, group_size = init_device(cfg)
    ckpt_dir = os.path.join(out_dir, f"ckpt_{rank}") if group_size > 1 else os.path.join(out_dir, "ckpt")
    if cfg.deterministic:
        ms.set_deterministic(True)
    accumulation = gb.accumulation_steps(cfg)
    point = _resume_point(cfg, hooks, group_size)  # the data order continues from there

    net = build_net(cfg, "" if cfg.resume else cfg.pretrained, allow_new_head=True)
    distill = distill_network(cfg, net) if distilling else None  # the teacher loaded and checked
    train_ds, rest_ds, batches = _train_datasets(cfg, hooks, rank, group_size, point, accumulation)
    steps = batches // accumulation  # optimizer steps per epoch: what the lr schedule counts
    lr_cfg, lr_warning = gb.lr_config(cfg, group_size)
    lr = create_lr_schedule(lr_cfg, steps)
    return TrainSetup(hooks=hooks, out_dir=out_dir, ckpt_dir=ckpt_dir, rank=rank, group_size=group_size,
                      point=point, accumulation=accumulation, net=net, loss=create_loss(cfg, net, hooks.loss),
                      train_ds=train_ds, rest_ds=rest_ds, batches=batches, steps=steps, lr_cfg=lr_cfg,
                      lr_warning=lr_warning, lr=lr, distill=distill)


def _resume_point(cfg, hooks, group_size):
    """--resume's checkpoint's epoch (and step), else where the family starts a run (THOR's
    pretrain_epoch_size), else epoch 0."""
    from common.training_state import ResumePoint, read_resume_point
    if not cfg.resume:
        return (hooks.resume_point(cfg) if hooks.resume_point else None) or ResumePoint()
    point = read_resume_point(cfg.resume, cfg, group_size)
    if point.within and cfg.dataset_sink_mode:
        raise ConfigError(f"config error: {cfg.resume} was saved mid-epoch; resuming it needs dataset_sink_mode False")
    return point


def training_callbacks(cfg, setup, trainer):
    """(callbacks, eval callback or None, EMA or None), after restoring a --resume checkpoint into the trainer."""
    from common import global_batch as gb
    from common.callbacks import CheckpointSaver, EvalCallback, ProgressLogger
    from common.ema import EMA, EMAUpdate
    from common.preemption import Preemption
    from common.resume import resume_training, set_optimizer_step
    from common.run_record import RunRecord

    net, rank, group_size, accumulation = setup.net, setup.rank, setup.group_size, setup.accumulation
    ema = EMA(net, cfg.ema_decay) if cfg.ema_decay else None
    if cfg.resume:
        resume_training(trainer.train_network, cfg.resume, setup.point.epoch, ema)
        set_optimizer_step(trainer.optimizer, setup.point, setup.steps, group_size, rank)

    callbacks = [ProgressLogger(trainer.lr, gb.global_batch(cfg, group_size), cfg.log_interval, rank,
                                accumulation=accumulation)]
    if ema is not None:
        callbacks.append(EMAUpdate(ema, accumulation))  # before the savers and eval, which read the average
    if group_size > 1 and cfg.eval_during_train:  # before the savers: they save what every rank evaluates
        from common.distributed_eval import average_batchnorm_stats
        callbacks.append(average_batchnorm_stats(net, group_size))
    run_info = {"device_num": group_size, "batch_size": cfg.batch_size, "gradient_accumulation_steps": accumulation}
    # made also with save_checkpoint False: a preemption (SIGTERM) saves through it
    saver = CheckpointSaver(setup.ckpt_dir, cfg.model, cfg.save_checkpoint_epochs, cfg.keep_checkpoint_max, rank,
                            ema=ema, every_steps=cfg.save_checkpoint_steps, run_info=run_info,
                            ranked=cfg.ckpt_save_policy == "top_k")
    if cfg.save_checkpoint:
        callbacks.append(saver)
    eval_cb = None
    if cfg.eval_during_train:
        val_ds, reduce_fn = _val_for_training(cfg, rank, group_size)
        eval_cb = EvalCallback(trainer.eval_model, val_ds, net, setup.ckpt_dir, cfg.eval_interval, rank, ema=ema,
                               reduce_fn=reduce_fn)
        callbacks.append(eval_cb)
    if cfg.save_checkpoint and saver.ranked and rank == 0:  # after the saver and eval: it ranks what they did
        from common.ckpt_policy import TopKCheckpoints
        resumed_at = (setup.point.epoch, setup.point.within) if cfg.resume else None
        callbacks.append(TopKCheckpoints(saver, eval_cb, cfg.keep_checkpoint_max, resumed_at))
    # after eval: a summary row holds that epoch's top-1
    callbacks.append(RunRecord(setup.out_dir, trainer.lr, gb.global_batch(cfg, group_size), setup.point.epoch,
                               eval_cb, ema is not None, accumulation, cfg.log_interval, cfg.tensorboard, rank,
                               setup.point.epoch * setup.steps + setup.point.within if cfg.resume else 0))
    # last: the EMA and the checks have seen the step; it saves even with save_checkpoint False
    callbacks.append(Preemption(saver, accumulation, rank))
    return callbacks, eval_cb, ema


def fit(cfg, setup, trainer, callbacks, log=None):
    """Write config.yaml (everything is checked by now) and start ``log`` (common.run_record.RunLog), print the
    start line and train."""
    from common import global_batch as gb
    from common.callbacks import RunCounters
    from common.config import save_args

    rank, group_size, point = setup.rank, setup.group_size, setup.point
    initial_epoch = point.epoch
    save_args(cfg, os.path.join(setup.out_dir, "config.yaml"), rank)  # only now: config, data and weights are checked
    if log is not None:
        log.open()
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


def _val_for_training(cfg, rank, group_size):
    """(val dataset, reduce_fn) for eval during training: each rank its shard, summed, when distributed."""
    from common.data import create_dataset
    if group_size == 1:
        return create_dataset(cfg, "val"), None
    from common.distributed_eval import ShardedEval, sharded_val_dataset
    dataset, local, _ = sharded_val_dataset(cfg, rank, group_size)
    return dataset, ShardedEval(local)
