"""THOR (second-order) training for the card's THOR configs, on Ascend or GPU.

MindSpore 2.10's own path, ``ConvertModelUtils().convert_to_thor_model(...)`` then ``Model.train``,
fails in both sink modes (``ModelThor._exec_preprocess() missing 2 required positional arguments``),
and THOR has no CPU kernels (``ThorIm2Col``). So THOR runs here in a plain Python loop that does
what ``ModelThor`` meant to do, without ``Model``:

- ``nn.thor(net, ...)`` converts the net's Conv2d/Dense into THOR layers (``ConvertNetUtils``)
  and builds ``ThorAscend``/``ThorGpu``;
- ``ThorTrainStep`` (a ``TrainOneStepCell`` with a fixed loss scale) computes gradients for the
  THOR parameters and, through a second plain Momentum optimizer, for the mix loss's beta (which
  THOR does not know about; it gets no weight decay);
- every ``frequency`` steps one step runs with ``thor=True`` (phase ``train0``: the layers record
  A/G statistics and the optimizer inverts them), the steps between with ``thor=False`` (phase
  ``train1``: the stale inverses precondition the gradient), as ModelThor's GPU branch does. Each
  phase compiles once.

On CPU, ``check_thor_device`` stops with one line pointing to the Momentum config.
"""
import os
import time

import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops
from mindspore import ParameterTuple, Tensor

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
    """The training loop; ``callbacks`` are ordinary ``mindspore.train.Callback`` objects.

    The global step (and so the THOR phase) continues from ``initial_epoch``."""
    from mindspore.train import RunContext
    from common.config import Config

    steps = dataset.get_dataset_size()
    cb = Config(train_network=train_step, network=train_step.network, epoch_num=epochs, batch_num=steps,
                cur_epoch_num=initial_epoch, cur_step_num=initial_epoch * steps, net_outputs=None,
                mode="train", dataset_sink_mode=False, train_dataset=dataset, optimizer=train_step.optimizer)
    context = RunContext(cb)
    _call(callbacks, "on_train_begin", context)
    iterator = dataset.create_tuple_iterator(num_epochs=epochs - initial_epoch)
    current = None
    for epoch in range(initial_epoch, epochs):
        cb.cur_epoch_num = epoch + 1
        _call(callbacks, "on_train_epoch_begin", context)
        for inputs in iterator:
            thor, phase = thor_phase(cb.cur_step_num, frequency)
            if (thor, phase) != current:
                train_step.set_thor(thor, phase)
                current = (thor, phase)
            cb.cur_step_num += 1
            _call(callbacks, "on_train_step_begin", context)
            cb.net_outputs = train_step(*inputs)
            _call(callbacks, "on_train_step_end", context)
            if context.get_stop_requested():
                break
        _call(callbacks, "on_train_epoch_end", context)
        if context.get_stop_requested():
            break
    _call(callbacks, "on_train_end", context)
    return cb


def _call(callbacks, hook, context):
    for callback in callbacks:
        getattr(callback, hook)(context)


def train_thor(cfg, hooks):
    """Train a card THOR config (Ascend/GPU), with the shared data pipeline and callbacks."""
    from common import engine
    from common.callbacks import CheckpointSaver, ProgressLogger
    from common.config import ConfigError, save_args
    from common.data import create_dataset, dataset_samples
    from common.outputs import check_new_training_run
    from multigrain.src.lr_generator import multigrain_damping, multigrain_lr

    message = thor_device_error(cfg.device_target)
    if message:
        raise ConfigError(message)
    out_dir = os.path.abspath(cfg.output_dir)
    check_new_training_run(out_dir)  # an earlier run's files are never overwritten
    rank, group_size = engine.init_device(cfg)
    ckpt_dir = os.path.join(out_dir, f"ckpt_{rank}" if group_size > 1 else "ckpt")

    net = engine.build_net(cfg, cfg.pretrained, allow_new_head=True)
    sampler = hooks.create_train_sampler(cfg, rank, group_size, len(dataset_samples(cfg, "train")))
    dataset = create_dataset(cfg, "train", rank, group_size, sampler=sampler)
    steps = dataset.get_dataset_size()
    start = cfg.pretrain_epoch_size
    lr_all = multigrain_lr(cfg, steps)
    lr, damping = lr_all[start * steps:], multigrain_damping(cfg, steps, start_epoch=start)
    loss = hooks.create_loss(cfg, net)
    optimizer = create_thor_optimizer(net, lr, damping, cfg)
    if cfg.amp_level != "O0":
        ms.amp.auto_mixed_precision(net, cfg.amp_level)
    beta_optimizer = nn.Momentum(loss.trainable_params(), Tensor(lr, ms.float32), cfg.momentum,
                                 loss_scale=cfg.loss_scale)
    train_step = ThorTrainStep(hooks.create_train_network(cfg, net, loss), optimizer, beta_optimizer,
                               cfg.loss_scale)
    train_step.set_train(True)
    callbacks = [ProgressLogger(lr_all, cfg.batch_size * group_size, cfg.log_interval, rank)]
    if cfg.save_checkpoint:
        callbacks.append(CheckpointSaver(ckpt_dir, cfg.model, cfg.save_checkpoint_epochs,
                                         cfg.keep_checkpoint_max, rank))
    save_args(cfg, os.path.join(out_dir, "config.yaml"), rank)  # only now: config, data and weights are checked
    if rank == 0:
        print(f"training {cfg.model} with THOR on {cfg.device_target} x{group_size}: {steps} steps/epoch, "
              f"frequency {cfg.frequency}, output {out_dir}", flush=True)
    began = time.time()
    run_thor_training(train_step, dataset, cfg.epoch_size, int(cfg.frequency), callbacks, initial_epoch=start)
    return {"ckpt_dir": ckpt_dir, "rank": rank, "net": net, "seconds": time.time() - began}
