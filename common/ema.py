"""Exponential moving average of a network's weights (``ema_decay``), as timm's ``ModelEmaV2``.

After every optimizer step ``ema = decay * ema + (1 - decay) * param`` for every parameter of the
network, BatchNorm statistics included; the average starts from the weights training starts
with. The update runs as one small graph (a HyperMap of ``Assign``), so it stays on the device.

The averaged weights are evaluated by swapping them into the network around ``Model.eval``
(``swapped()``), saved under the network's own parameter names (so ``ema_best.ckpt`` is an
ordinary checkpoint for eval/export), and stored as ``ema.<name>`` entries in the training
checkpoint so that ``--resume`` restores them.
"""
import contextlib
import logging

import numpy as np
import mindspore as ms
from mindspore import nn, ops
from mindspore.train import Callback

from common.errors import ConfigError, WeightsError

_logger = logging.getLogger(__name__)
PREFIX = "ema."

_ema_update = ops.MultitypeFuncGraph("ema_update")


@_ema_update.register("Tensor", "Tensor", "Tensor")
def _update(decay, average, param):
    return ops.assign(average, average * decay + param.astype(average.dtype) * (1.0 - decay))


_ema_swap = ops.MultitypeFuncGraph("ema_swap")


@_ema_swap.register("Tensor", "Tensor")
def _swap(average, param):
    old_param, old_average = param + 0, average + 0  # both read before either is written
    written = ops.assign(param, old_average.astype(param.dtype))
    return ops.depend(ops.assign(average, old_param.astype(average.dtype)), written)


class _Swap(nn.Cell):
    """Exchanges two parameter tuples in place. In-place assignment, not ``Parameter.set_data``:
    in PYNATIVE mode set_data on trained parameters makes later steps diverge."""

    def __init__(self, averages, params):
        super().__init__(auto_prefix=False)
        self.averages, self.params = averages, params
        self.hyper_map = ops.HyperMap()

    def construct(self):
        return self.hyper_map(_ema_swap, self.averages, self.params)


class EMA(nn.Cell):
    """Holds ``ema.<name>`` copies of ``net``'s parameters; calling it applies one update."""

    def __init__(self, net, decay):
        super().__init__(auto_prefix=False)
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"config error: ema_decay must be in (0, 1) (0 disables EMA), got {decay}")
        self.decay_value = float(decay)
        self.decay = ms.Tensor(decay, ms.float32)
        self.params = ms.ParameterTuple(net.get_parameters())
        self.averages = ms.ParameterTuple(
            ms.Parameter(ms.Tensor(p.asnumpy().copy()), name=PREFIX + p.name, requires_grad=False)
            for p in self.params)
        self.hyper_map = ops.HyperMap()
        self._swapper = None

    def construct(self):
        return self.hyper_map(ops.partial(_ema_update, self.decay), self.averages, self.params)

    def state(self):
        """``{ema.<name>: Parameter}`` for a training checkpoint's ``append_dict``."""
        return {a.name: a for a in self.averages}

    def as_weights(self):
        """The averages under the network's parameter names, for ``ms.save_checkpoint``."""
        return [{"name": p.name, "data": a} for p, a in zip(self.params, self.averages)]

    def load(self, state, source="checkpoint"):
        """Restore the averages from a loaded checkpoint dict; False (and a warning) when it has none."""
        found = [a for a in self.averages if a.name in state]
        if not found:
            _logger.warning("%s holds no EMA weights: the average restarts from the current weights", source)
            return False
        missing = [a.name for a in self.averages if a.name not in state]
        if missing:
            raise WeightsError(f"{source} holds EMA weights for another network; missing: {', '.join(missing[:6])}")
        for average in self.averages:
            average.set_data(ms.Tensor(state[average.name].asnumpy(), average.dtype))
        return True

    @contextlib.contextmanager
    def swapped(self):
        """Inside the block the network holds the averaged weights; they are put back after."""
        self._swap()
        try:
            yield
        finally:
            self._swap()

    def _swap(self):
        if self._swapper is None:
            self._swapper = _Swap(self.averages, self.params)
        self._swapper()


class EMAUpdate(Callback):
    """Apply one EMA update after every optimizer step (every ``accumulation`` batches)."""

    def __init__(self, ema, accumulation=1):
        super().__init__()
        self.ema = ema
        self.accumulation = max(1, int(accumulation))

    def on_train_step_end(self, run_context):
        if run_context.original_args().cur_step_num % self.accumulation == 0:
            self.ema()
