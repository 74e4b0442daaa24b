"""Gradient accumulation (``gradient_accumulation_steps``): A batches per optimizer step.

``GradientAccumulation`` stands where the optimizer stands in ``Model``'s train cell (it has the
optimizer's ``parameters``), so amp, the loss scale and the data-parallel gradient mean stay
MindSpore's own. Each call adds the batch's gradients to a buffer; every A-th call hands the
buffer's mean to the optimizer and clears it. So A batches of B on D devices give the update of
one batch of A·B·D, and the optimizer's ``global_step`` (which indexes the lr schedule) counts
optimizer steps, not batches. (MindCV's ``GradientAccumulation`` advances the lr every batch; here
the schedule is built per optimizer step.) The gradients are averaged across ranks every batch,
not only before the update: more communication, the same result.

Parameter names: ``accumulated_grads.<param>`` and ``accumulation_count``; the optimizer's own
keep their names (``moments.*``, ``global_step``, ``learning_rate``), so a checkpoint of an
accumulating run resumes with or without accumulation.
"""
import mindspore as ms
from mindspore import nn, ops

STATE_PREFIXES = ("accumulated_grads.", "accumulation_count")

_add_mean = ops.MultitypeFuncGraph("add_mean")


@_add_mean.register("Tensor", "Tensor", "Tensor")
def _add(scale, buffer, grad):
    return ops.assign_add(buffer, grad.astype(buffer.dtype) * scale)


_clear = ops.MultitypeFuncGraph("clear")


@_clear.register("Tensor")
def _zero(buffer):
    return ops.assign(buffer, ops.zeros_like(buffer))


class GradientAccumulation(nn.Cell):
    """``optimizer`` applied every ``steps`` calls to the mean of the gradients it was given."""

    def __init__(self, optimizer, steps):
        super().__init__(auto_prefix=False)
        self.optimizer = optimizer
        self.parameters = optimizer.parameters
        self.steps = int(steps)
        self.scale = ms.Tensor(1.0 / self.steps, ms.float32)
        self.buffers = self.parameters.clone(prefix="accumulated_grads", init="zeros")
        self.count = ms.Parameter(ms.Tensor(0, ms.int32), name="accumulation_count", requires_grad=False)
        self.hyper_map = ops.HyperMap()

    def construct(self, grads):
        done = self.hyper_map(ops.partial(_add_mean, self.scale), self.buffers, grads)
        count = ops.depend(self.count + 1, done)
        if count >= self.steps:
            ops.assign(self.count, 0)
            applied = self.optimizer(self.buffers)
            return ops.depend(self.hyper_map(_clear, self.buffers), applied)
        ops.assign(self.count, count)
        return done
