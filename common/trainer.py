"""The trainer contract of the train task (``common.train``) and the shared trainer.

The train task runs setup -> a trainer -> callbacks -> fit. A trainer (``Trainer``) is only a network, its
optimizer and a step loop; ``model_trainer`` is the shared one (mindspore ``Model``). A family's
``TaskHooks.create_trainer`` may return another (MultiGrain's THOR): resume, EMA, counters, checkpoints and
eval stay the task's. Kept apart so a family's trainer never imports the task."""
import dataclasses
from typing import Callable

from common.errors import ConfigError
from common.metrics import metrics


@dataclasses.dataclass(frozen=True)
class TrainSetup:
    """What every trainer starts from, once the config, weights and data have been checked (read-only: a
    trainer builds on it, it does not change it)."""
    hooks: object
    out_dir: str
    ckpt_dir: str
    rank: int
    group_size: int
    point: object          # common.training_state.ResumePoint: --resume's, the resume_point hook's, or epoch 0
    accumulation: int      # batches per optimizer step
    net: object
    loss: object
    train_ds: object       # from the first whole epoch on
    rest_ds: object        # the rest of a mid-epoch checkpoint's epoch, or None
    batches: int           # batches per epoch
    steps: int             # optimizer steps per epoch
    lr_cfg: object
    lr_warning: str
    lr: list               # the shared schedule, one value per optimizer step
    distill: object = None  # the distillation train network (common.distill) or None


@dataclasses.dataclass
class Trainer:
    """A network and optimizer with their step loop."""
    train_network: object  # what checkpoints save and --resume restores (weights + optimizer state)
    optimizer: object      # its global_step indexes the lr
    lr: object             # per optimizer step, for the progress line
    fit: Callable          # (epochs, dataset, callbacks, initial_epoch, dataset_sink_mode) -> None
    eval_model: object     # a mindspore Model whose eval() runs during training
    label: str = ""        # in the start line, e.g. " with THOR"


def eval_model(net, loss):
    """A Model that only evaluates ``net`` with ``loss`` (for a trainer that does not train through Model)."""
    from mindspore import nn
    from mindspore.train import Model
    return Model(net, eval_network=nn.WithEvalCell(net, loss), eval_indexes=[0, 1, 2], metrics=metrics())


def model_trainer(cfg, setup):
    """The shared trainer: the configured optimizer, loss scale and amp in a mindspore ``Model``."""
    from mindspore import nn
    from mindspore.train import Model
    from common.grad_clip import clipped
    from common.optim import create_optimizer

    hooks, net = setup.hooks, setup.net
    manager, opt_scale = _loss_scale_manager(cfg)
    loss = setup.loss
    train_params = net.trainable_params() + (loss.trainable_params() if isinstance(loss, nn.Cell) else [])
    optimizer = create_optimizer(train_params, cfg, setup.lr, loss_scale=opt_scale)
    model_kwargs = dict(optimizer=optimizer, metrics=metrics(), amp_level=cfg.amp_level,
                        loss_scale_manager=manager)
    if hooks.create_train_network or setup.distill is not None:
        train_net = setup.distill or hooks.create_train_network(cfg, net, loss)
        model = Model(train_net, eval_network=nn.WithEvalCell(net, loss), eval_indexes=[0, 1, 2], **model_kwargs)
    else:
        model = Model(net, loss_fn=loss, **model_kwargs)

    # what the train cell calls with the all-reduced gradients: with accumulation, a buffer whose mean
    # goes on every `accumulation` batches (common/accumulation.py) to the clip (common/grad_clip.py)
    # and then to the optimizer: one clip per optimizer step
    step = clipped(optimizer, cfg)
    if setup.accumulation > 1:
        from common.accumulation import GradientAccumulation
        step = GradientAccumulation(step, setup.accumulation)
    if step is not optimizer:
        model.train_network.optimizer = step

    def fit_model(epochs, dataset, callbacks, initial_epoch, dataset_sink_mode):
        model.train(epochs, dataset, callbacks=callbacks, dataset_sink_mode=dataset_sink_mode,
                    initial_epoch=initial_epoch)
    return Trainer(train_network=model.train_network, optimizer=optimizer, lr=setup.lr, fit=fit_model,
                   eval_model=model)


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
    if cfg.loss_scale_mode == "dynamic":
        if cfg.device_target == "CPU":
            raise ConfigError("config error: loss_scale_mode dynamic is not supported on CPU by MindSpore "
                              "(only a fixed loss scale); use --loss_scale_mode fixed")
        return DynamicLossScaleManager(init_loss_scale=cfg.loss_scale), 1.0
    if cfg.loss_scale_mode != "fixed":
        raise ConfigError(f"config error: loss_scale_mode must be fixed or dynamic, not '{cfg.loss_scale_mode}'")
    return FixedLossScaleManager(cfg.loss_scale, drop_overflow_update=False), cfg.loss_scale
