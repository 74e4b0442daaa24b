"""Knowledge distillation (``distill_*`` keys, docs/distillation.md): a frozen teacher's soft labels in
the student's loss, Hinton's KL or PaddleClas SSLD's Jensen-Shannon divergence.

    loss = (1 - alpha) * CE(labels) + alpha * T^2 * D(softmax(teacher / T), softmax(student / T))

``DistillWithLoss`` is the train network (image, label) -> loss: the student and the teacher see the same
augmented (mixed) batch in one compiled graph. The teacher is frozen: its BatchNorm stays in inference
mode whatever ``set_train`` says, its output is a constant for autodiff, its parameters need no gradient
and are no optimizer's, and their names (``distill_teacher.*``) keep them out of every checkpoint
(``common.checkpoint.save_checkpoint_atomic``): a run reloads the teacher from ``distill_teacher_ckpt``.

Images of ``distill_unlabeled`` carry label -1 (``common.data.samples.UNLABELED``): a one-hot row of
zeros, so CE is weighed by each image's labeled share (mixup/cutmix mix it in) and divided by the
batch's labeled share; the distill term is averaged over every image."""
import math

import mindspore as ms
from mindspore import nn, ops

from common.checkpoint import TEACHER_PREFIX
from common.errors import ConfigError, WeightsError

DISTILL_LOSSES = ("kl", "js")


def distill_enabled(cfg):
    """Whether the config distills (its distill keys checked first)."""
    if not cfg.distill_teacher:
        if cfg.distill_unlabeled:
            raise ConfigError("config error: distill_unlabeled images train on the distill term only: "
                              "set distill_teacher (and distill_teacher_ckpt)")
        return False
    if not cfg.distill_teacher_ckpt:
        raise ConfigError(f"config error: distill_teacher {cfg.distill_teacher} needs its weights: "
                          "set distill_teacher_ckpt")
    return True


def check_distill_family(cfg, hooks):
    """Distillation replaces the shared cross-entropy train network: a family with its own is refused."""
    if hooks.create_train_network or (hooks.loss not in (None, "cross_entropy")):
        raise ConfigError(f"config error: {cfg.model} trains with its own loss/network; distillation "
                          f"(distill_teacher) is for the classifiers with the shared cross-entropy")


def build_teacher(cfg, student):
    """The teacher named by the config with its weights (``load_weights``: any format we read); its class
    count and preprocessing checked against the student's."""
    from common.checkpoint import load_weights
    from common.registry import create_model
    try:
        teacher = create_model(cfg.distill_teacher, num_classes=cfg.num_classes, drop_rate=0.0)
    except ValueError as err:
        raise ConfigError(f"config error: distill_teacher: {err}") from None
    _check_preprocessing(cfg, student, teacher)
    try:
        load_weights(teacher, cfg.distill_teacher_ckpt, arch=cfg.distill_teacher)
    except WeightsError as err:
        classes = _file_classes(teacher, cfg.distill_teacher_ckpt)
        if classes is not None and classes != cfg.num_classes:
            raise ConfigError(f"config error: distill_teacher {cfg.distill_teacher} from {cfg.distill_teacher_ckpt} "
                              f"predicts {classes} classes but the student {cfg.model} has {cfg.num_classes}: "
                              f"a teacher must predict the student's classes") from None
        raise WeightsError(f"distill_teacher_ckpt: {err}") from None
    return teacher


def _file_classes(teacher, path):
    """The class count of the classifier in the weights file ``path`` (None: unreadable or no classifier)."""
    from common.checkpoint import classifier_param_names
    from common.convert import to_net_names
    from common.weights import read_weights
    try:
        found = read_weights(path)
        renamed = to_net_names(found.tensors, teacher, found.fmt)
    except (WeightsError, ValueError, KeyError):
        return None
    shapes = [renamed.arrays[n].shape for n in classifier_param_names(teacher) if n in renamed.arrays]
    return int(shapes[0][0]) if shapes else None


def _check_preprocessing(cfg, student, teacher):
    """Mean/std the teacher was made for must be the student's (one line if not); another input size
    is said once: the teacher sees the student's crops."""
    mine, theirs = student.pretrained_cfg, teacher.pretrained_cfg
    for key in ("mean", "std"):
        if not _close(mine.get(key), theirs.get(key)):
            raise ConfigError(f"config error: distill_teacher {cfg.distill_teacher} normalises with {key} "
                              f"{list(theirs.get(key))}, the student {cfg.model} with {list(mine.get(key))}: "
                              f"the teacher would see other pixels than it was trained on")
    if tuple(mine.get("input_size", ())) != tuple(theirs.get("input_size", ())):
        print(f"distill_teacher {cfg.distill_teacher} (made for {theirs.get('input_size')}) sees the student's "
              f"{cfg.image_size} px crops", flush=True)


def _close(a, b):
    return a is None or b is None or all(abs(float(x) - float(y)) < 1e-6 for x, y in zip(a, b))


class FrozenTeacher(nn.Cell):
    """A network in inference mode for good: ``set_train(True)`` on a parent does not reach it, its
    output is a constant for autodiff, its parameters are renamed ``distill_teacher.*`` and need no grad."""

    def __init__(self, net):
        super().__init__(auto_prefix=False)
        for param in net.get_parameters():
            param.requires_grad = False
            param.name = TEACHER_PREFIX + param.name
        self.net = net.set_train(False)

    def add_flags_recursive(self, **flags):
        if "training" in flags:
            flags["training"] = False  # BatchNorm keeps its running statistics, dropout stays off
        return super().add_flags_recursive(**flags)

    def construct(self, x):
        return ops.stop_gradient(self.net(x))


def _log_add_exp(a, b):
    top = ops.maximum(a, b)
    return top + ops.log1p(ops.exp(-ops.abs(a - b)))


class DistillLoss(nn.Cell):
    """(student logits, teacher logits, labels) -> (1 - alpha) CE + alpha T^2 D. Labels: (N,) ints with
    -1 for unlabeled, or (N, C) soft rows (mixup/cutmix) whose sum is the row's labeled share."""

    def __init__(self, kind="kl", temperature=1.0, alpha=0.5, num_classes=1000, smooth_factor=0.0):
        super().__init__()
        if kind not in DISTILL_LOSSES:
            raise ConfigError(f"config error: distill_loss must be one of {', '.join(DISTILL_LOSSES)}, not '{kind}'")
        self.js = kind == "js"
        self.temperature, self.alpha = float(temperature), float(alpha)
        self.num_classes, self.smooth = int(num_classes), float(smooth_factor)
        self.log2 = math.log(2.0)

    def distill_term(self, logits, teacher_logits):
        """T^2 x the mean over the batch of KL(teacher || student) or JS(teacher, student) at temperature T."""
        t = self.temperature
        log_s = ops.log_softmax(logits.astype(ms.float32) / t, -1)
        log_t = ops.log_softmax(teacher_logits.astype(ms.float32) / t, -1)
        if self.js:
            log_m = _log_add_exp(log_s, log_t) - self.log2
            per = 0.5 * (ops.exp(log_t) * (log_t - log_m) + ops.exp(log_s) * (log_s - log_m)).sum(-1)
        else:
            per = (ops.exp(log_t) * (log_t - log_s)).sum(-1)
        return per.mean() * (t * t)

    def cross_entropy(self, logits, label):
        """Label-smoothed CE over the labeled share of the batch (0 when nothing in it is labeled)."""
        if label.ndim == 1:
            weight = (label >= 0).astype(ms.float32)
            target = ops.one_hot(ops.maximum(label, 0).astype(ms.int32), self.num_classes,
                                 ms.Tensor(1.0, ms.float32), ms.Tensor(0.0, ms.float32)) * weight.expand_dims(-1)
        else:
            target = label.astype(ms.float32)
            weight = target.sum(-1)
        target = target * (1.0 - self.smooth) + weight.expand_dims(-1) * (self.smooth / self.num_classes)
        per = -(target * ops.log_softmax(logits.astype(ms.float32), -1)).sum(-1)
        return per.sum() / ops.maximum(weight.sum(), 1e-6)

    def construct(self, logits, teacher_logits, label):
        return (1.0 - self.alpha) * self.cross_entropy(logits, label) + \
            self.alpha * self.distill_term(logits, teacher_logits)


class DistillWithLoss(nn.Cell):
    """Train network (image, label) -> loss: ``net`` and the frozen ``teacher`` on the same batch.
    Not prefixing: the student's parameter names stay those of ``nn.WithLossCell``'s (checkpoints match)."""

    def __init__(self, net, teacher, loss):
        super().__init__(auto_prefix=False)
        self._backbone = net
        self.teacher = FrozenTeacher(teacher)
        self._loss_fn = loss

    def to_float(self, dst_type):
        """AMP (``Model``'s amp_level) casts the student only. The loss stays float32, as MindSpore keeps
        the loss_fn it is given out of the cast; so does the teacher, whose activations were never trained
        to fit float16 (a digits teacher cast to float16 gave a NaN loss at the first step)."""
        self._backbone.to_float(dst_type)
        self.teacher.to_float(ms.float32)  # every cell of it: AMP's BatchNorm wrappers then cast back
        return self

    def construct(self, image, label):
        return self._loss_fn(self._backbone(image), self.teacher(image), label)


def distill_network(cfg, net):
    """The config's distillation train network around ``net`` (the teacher built and loaded)."""
    loss = DistillLoss(cfg.distill_loss, cfg.distill_temperature, cfg.distill_alpha, cfg.num_classes,
                       cfg.label_smooth_factor)
    return DistillWithLoss(net, build_teacher(cfg, net), loss)
