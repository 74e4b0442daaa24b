"""Which square input sizes a network can take, from its strides and pools, checked before anything runs.

A stride-2 conv with padding k//2 gives ``ceil(n / 2)`` rows, a 2x2/2 pool without padding
``floor(n / 2)``: where both branches of a block meet (a residual, a concat) an odd side makes them
differ by one and MindSpore stops deep inside the graph with a shape mismatch (DLA at 112 px, PeleeNet
at 150 px; timm's DLA fails at the same sizes: it is the architecture). A family's record gives
``feature_sides(model, image_size)``: its forward pass walked on the side length only, with the same
kernel/stride/padding as its cells, returning the side of each ``feature_info`` map and raising
``SizeMismatch`` where the branches disagree or a side shrinks to 0. Everything here follows from it:
``check_image_size`` refuses a size in one line naming the nearest sizes the model takes.
"""
from common.errors import ConfigError

# How far from the asked size the nearest accepted sizes are looked for (a walk costs microseconds).
_SEARCH = 512
MIN_SIDE = 8  # common.config's lower bound of image_size


class SizeMismatch(Exception):
    """The walk of a forward pass cannot go on at feature stage ``stage`` (an index into feature_info)."""

    def __init__(self, stage, reason):
        super().__init__(reason)
        self.stage, self.reason = stage, reason


def window_side(side, kernel, stride=1, padding=0):
    """Output side of a conv or pool window: ``floor((n + 2p - k) / s) + 1`` (MindSpore, PyTorch)."""
    return (side + 2 * padding - kernel) // stride + 1


def joined(stage, where, **sides):
    """The common side of branches that meet at ``where`` (``name=side``); ``SizeMismatch`` if they differ
    or a side is below 1."""
    values = set(sides.values())
    if min(values) < 1:
        raise SizeMismatch(stage, f"at {where} the maps shrink to nothing")
    if len(values) > 1:
        parts = " but ".join(f"{name} gives {side}x{side}" for name, side in sides.items())
        raise SizeMismatch(stage, f"at {where} {parts}")
    return values.pop()


def _walker(model):
    from common.family import family_of
    record = family_of(model)
    return getattr(record, "feature_sides", None) if record else None


def size_problem(model, image_size, stages=None):
    """Why ``model`` cannot take ``image_size`` px inputs (its first ``stages`` feature maps; None: the
    whole net), or None when it can (or its family declares no walk)."""
    walk = _walker(model)
    if walk is None:
        return None
    try:
        walk(model, int(image_size))
    except SizeMismatch as err:
        if stages is None or err.stage < stages:
            return err.reason
    return None


def nearest_sizes(model, image_size, stages=None):
    """(largest accepted size below ``image_size`` or None, smallest above or None)."""
    below = next((s for s in range(image_size - 1, max(MIN_SIDE, image_size - _SEARCH) - 1, -1)
                  if size_problem(model, s, stages) is None), None)
    above = next((s for s in range(image_size + 1, image_size + _SEARCH)
                  if size_problem(model, s, stages) is None), None)
    return below, above


def check_image_size(model, image_size, stages=None, key="image_size"):
    """``ConfigError`` (one line) if ``model`` cannot take ``image_size`` px inputs."""
    reason = size_problem(model, image_size, stages)
    if reason is None:
        return
    near = [str(s) for s in nearest_sizes(model, image_size, stages) if s is not None]
    hint = f"; nearest sizes it takes: {' or '.join(near)}" if near else ""
    raise ConfigError(f"config error: {model} cannot take {key} {image_size} ({reason}){hint}")


def stages_used(cfg):
    """How many feature maps the task runs through: a backbone export with ``out_indices`` stops at the
    last one it outputs; everything else runs the whole net (None)."""
    indices = [i for i in (cfg.get("out_indices") or []) if isinstance(i, int) and not isinstance(i, bool) and i >= 0]
    return max(indices) + 1 if cfg.get("export_head") == "features" and indices else None


def check_config_image_size(cfg):
    """The config's ``image_size`` against its model (training, eval, export, predict alike)."""
    check_image_size(cfg.model, cfg.image_size, stages_used(cfg))
