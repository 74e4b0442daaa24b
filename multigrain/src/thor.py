"""THOR (second-order) training for the card's THOR configs, on Ascend or GPU.

MindSpore 2.10's own path, ``ConvertModelUtils().convert_to_thor_model(...)`` then ``Model.train``,
fails in both sink modes (``ModelThor._exec_preprocess() missing 2 required positional arguments``),
and THOR has no CPU kernels (``ThorIm2Col``). So THOR runs in ``common.loop``'s plain Python loop
and does what ``ModelThor`` meant to do, without ``Model``. ``thor_trainer`` is MultiGrain's
``create_trainer`` hook for THOR configs: the train task (``common.train``) does the setup, resume, EMA,
counters, checkpoints and eval around it, as for any trainer. THOR is registered as optimizer ``thor``
(``common.optim``), the name the card's THOR configs give.

- ``nn.thor(net, ...)`` converts the net's Conv2d/Dense into THOR layers (``ConvertNetUtils``)
  and builds ``ThorAscend``/``ThorGpu``;
- ``ThorTrainStep`` (a ``TrainOneStepCell`` with a fixed loss scale) computes gradients for the
  THOR parameters and, through a second plain Momentum optimizer, for the mix loss's beta (which
  THOR does not know about; it gets no weight decay);
- every ``frequency`` steps one step runs with ``thor=True`` (phase ``train0``: the layers record
  A/G statistics and the optimizer inverts them), the steps between with ``thor=False`` (phase
  ``train1``: the stale inverses precondition the gradient), as ModelThor's GPU branch does. Each
  phase compiles once.

What THOR cannot do (CPU, gradient accumulation, sink mode, a dynamic loss scale, pretrain_epoch_size
with --resume) is refused in one line by ``multigrain.src.task.check_config``, before any data check.
"""
import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops
from mindspore import ParameterTuple, Tensor

from common.errors import ConfigError
from common.optim import create_optimizer, register_optimizer

THOR_DEVICES = ("Ascend", "GPU")
MOMENTUM_CONFIG = "config/resnet50_imagenet2012_config.yaml"


def is_thor(cfg):
    return str(cfg.optimizer).lower() == "thor"


def thor_device_error(device_target):
    """The one-line message for a THOR config on a device THOR cannot run on (None if it can)."""
    if device_target in THOR_DEVICES:
        return None
    return (f"THOR needs Ascend or GPU (device_target is {device_target}); on CPU train with "
            f"{MOMENTUM_CONFIG} (Momentum)")


def thor_phase(step, frequency):
    """(thor flag, phase name) of global step ``step``: second-order update every ``frequency`` steps."""
    return (True, "train0") if step % frequency == 0 else (False, "train1")


def create_thor_optimizer(net, lr, damping, cfg):
    """``nn.thor`` over ``net`` as ModelZoo ResNet-50 builds it (converts the net in place).

    ``lr``/``damping`` are per-step arrays; the card's ``split_indices`` [26, 53] split the 54
    A/G matrices (53 convs + fc) into two all-reduce groups when distributed."""
    return nn.thor(net, Tensor(lr, ms.float32), Tensor(damping, ms.float32), cfg.momentum, cfg.weight_decay,
                   cfg.loss_scale, cfg.batch_size, split_indices=list(cfg.split_indices),
                   frequency=int(cfg.frequency))


@register_optimizer("thor")
def _thor(params, cfg, lr, loss_scale, net=None, damping=None):
    """Optimizer ``thor`` (``common.optim``): THOR converts the net's layers, so it takes the net and its
    damping schedule, which only ``thor_trainer`` hands it (``loss_scale`` is the config's, fixed)."""
    if net is None or damping is None:  # the shared trainer asked: THOR steps only in thor_trainer
        raise ConfigError(f"config error: optimizer thor trains MultiGrain models only (its own THOR trainer), "
                          f"not {cfg.model}")
    return create_thor_optimizer(net, lr, damping, cfg)


def _own_names(extra_optimizer, thor_optimizer, prefix="beta_"):
    """Rename ``extra_optimizer``'s state that has the name of THOR's own (global_step, learning_rate,
    momentum): a train step holding two parameters of one name can be saved but not loaded by --resume."""
    taken = {p.name for p in thor_optimizer.get_parameters()}
    for param in extra_optimizer.get_parameters():
        if param.name in taken:
            param.name = prefix + param.name


class ThorTrainStep(nn.TrainOneStepCell):
    """One training step: scaled-loss gradients -> THOR (net) + ``extra_optimizer`` (e.g. beta)."""

    def __init__(self, network_with_loss, thor_optimizer, extra_optimizer=None, loss_scale=1.0):
        super().__init__(network_with_loss, thor_optimizer, sens=float(loss_scale))
        self.extra_optimizer = extra_optimizer
        extra = list(extra_optimizer.parameters) if extra_optimizer is not None else []
        self.num_thor = len(self.weights)
        self.weights = ParameterTuple(list(self.weights) + extra)
        if self.reducer_flag:
            self.grad_reducer = nn.DistributedGradReducer(self.weights, self.mean, self.degree)

    def set_thor(self, thor, phase):
        """Select the second-order (``thor=True``) or first-order graph for the next calls."""
        self.add_flags_recursive(thor=thor)
        self.phase = phase

    def construct(self, *inputs):
        loss = self.network(*inputs)
        sens = ops.fill(loss.dtype, loss.shape, self.sens)
        grads = self.grad(self.network, self.weights)(*inputs, sens)
        grads = self.grad_reducer(grads)
        self.optimizer(grads[:self.num_thor])
        if self.extra_optimizer is not None:
            self.extra_optimizer(grads[self.num_thor:])
        return loss


def run_thor_training(train_step, dataset, epochs, frequency, callbacks=(), initial_epoch=0):
    """``common.loop.run_loop`` with THOR's phase switch before each step; the global step (and so the
    phase) continues from ``initial_epoch``."""
    from common.loop import run_loop
    current = []

    def switch_phase(step):
        thor_and_phase = thor_phase(step, frequency)
        if current != [thor_and_phase]:  # each phase compiles once: switch only when it changes
            train_step.set_thor(*thor_and_phase)
            current[:] = [thor_and_phase]
    return run_loop(train_step, dataset, epochs, callbacks, initial_epoch, before_step=switch_phase)


def thor_trainer(cfg, setup):
    """The THOR optimizer and step for the train task (a ``TaskHooks.create_trainer``): the shared
    setup, resume, EMA, counters, checkpoints and eval run around it. What THOR cannot do is refused
    earlier, in ``multigrain.src.task.check_config``; a run from pretrained epochs starts after them
    (``setup.point``, from the ``resume_point`` hook)."""
    from common.trainer import Trainer, eval_model
    from multigrain.src.lr_generator import multigrain_damping, multigrain_lr

    hooks, net, loss, steps = setup.hooks, setup.net, setup.loss, setup.steps
    start = cfg.pretrain_epoch_size  # epochs the --pretrained weights trained: the schedules start there
    lr_all = multigrain_lr(cfg, steps)
    # the optimizer's step starts at 0 here (and is restored by --resume, never combined with start)
    lr, damping = lr_all[start * steps:], multigrain_damping(cfg, steps, start_epoch=start)
    optimizer = create_optimizer(net.trainable_params(), cfg, lr, cfg.loss_scale, net=net, damping=damping)
    if cfg.amp_level != "O0":
        ms.amp.auto_mixed_precision(net, cfg.amp_level)
    beta_optimizer = nn.Momentum(loss.trainable_params(), Tensor(lr, ms.float32), cfg.momentum,
                                 loss_scale=cfg.loss_scale)
    _own_names(beta_optimizer, optimizer)
    train_step = ThorTrainStep(hooks.create_train_network(cfg, net, loss), optimizer, beta_optimizer,
                               cfg.loss_scale)
    train_step.set_train(True)

    def fit(epochs, dataset, callbacks, initial_epoch, dataset_sink_mode):
        run_thor_training(train_step, dataset, epochs, int(cfg.frequency), callbacks, initial_epoch)
    return Trainer(train_network=train_step, optimizer=optimizer, lr=lr_all, fit=fit,
                   eval_model=eval_model(net, loss), label=f" with THOR (frequency {cfg.frequency})")
