"""Backbone mode: any registered model as a Cell returning its multi-scale feature maps.

Like timm's ``FeatureListNet`` / ``build_model_with_cfg(features_only=True)``: a family only
declares ``feature_info`` (``[{num_chs, reduction, module}]``, ``module`` the dotted name of the
child cell whose output is the map); the model's children, run in order, must be its forward
pass up to the last map (true of DLA, PeleeNet and the ResNet trunk; tests/test_backbone.py checks it per
family). The stages after the last selected map and the head are not kept.
"""
import numbers

import mindspore.nn as nn


def resolve_out_indices(feature_info, out_indices):
    """``out_indices`` as a sorted tuple of valid indices (None: all of ``feature_info``)."""
    count = len(feature_info)
    if out_indices is None or (isinstance(out_indices, (list, tuple)) and len(out_indices) == 0):
        return tuple(range(count))
    indices = (out_indices,) if isinstance(out_indices, numbers.Integral) else tuple(out_indices)
    bad = [i for i in indices if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < count]
    if bad or len(set(indices)) != len(indices):
        modules = ", ".join(f"{i}={info['module']}" for i, info in enumerate(feature_info))
        raise ValueError(f"out_indices {list(indices)}: each must be a distinct index 0..{count - 1} "
                         f"of feature_info ({modules})")
    return tuple(sorted(int(i) for i in indices))


def _stages(cell, targets, prefix=""):
    """[(dotted name, cell)] of the children in run order, descending (only) into a SequentialCell
    that holds a target module, so that every target is one entry."""
    stages = []
    for name, child in cell.name_cells().items():
        full = prefix + name
        if full not in targets and any(t.startswith(full + ".") for t in targets):
            if not isinstance(child, nn.SequentialCell):
                raise TypeError(f"feature module inside {full} ({type(child).__name__}): only a "
                                f"SequentialCell runs its children in order")
            stages += _stages(child, targets, full + ".")
        else:
            stages.append((full, child))
    return stages


class _Chain(nn.Cell):
    """Runs cells one after the other, keeping their parameter names (no prefix added)."""

    def __init__(self, cells):
        super().__init__(auto_prefix=False)
        self.stages = nn.CellList(cells, auto_prefix=False)

    def construct(self, x):
        for cell in self.stages:
            x = cell(x)
        return x


class FeatureListNet(nn.Cell):
    """``model``'s stages up to its last selected feature map; ``construct(x)`` returns one NCHW
    map per selected ``feature_info`` entry, as a tuple.

    Parameter names stay the classification model's (``level3.tree1.conv1.weight``), so its
    checkpoints load by name; ``feature_info`` lists the selected maps (channels, reduction,
    module, index); ``dropped_params`` names the model's parameters this backbone does not use."""

    def __init__(self, model, out_indices=None):
        super().__init__(auto_prefix=False)
        info = list(getattr(model, "feature_info", None) or [])
        if not info:
            raise ValueError(f"{type(model).__name__} declares no feature_info: it has no backbone mode")
        indices = resolve_out_indices(info, out_indices)
        self.feature_info = [dict(info[i], index=i) for i in indices]
        targets = [entry["module"] for entry in self.feature_info]
        stages = _stages(model, targets)
        names = [name for name, _ in stages]
        missing = [t for t in targets if t not in names]
        if missing:
            raise ValueError(f"feature_info names {missing}, not a child of {type(model).__name__} "
                             f"(children in run order: {', '.join(names)})")
        segments, start = [], 0
        for target in targets:  # one segment per map: the stages from the previous map up to this one
            end = names.index(target) + 1
            segments.append(_Chain([cell for _, cell in stages[start:end]]))
            start = end
        self.segments = nn.CellList(segments, auto_prefix=False)
        kept = {id(p) for p in self.get_parameters()}
        self.dropped_modules = names[start:]
        self.dropped_params = [p.name for p in model.get_parameters() if id(p) not in kept]

    def construct(self, x):
        maps = ()
        for segment in self.segments:
            x = segment(x)
            maps = maps + (x,)
        return maps


def create_features_model(entrypoint, name, out_indices=None, checkpoint_path="", **kwargs):
    """Build ``entrypoint(**kwargs)`` as a FeatureListNet; ``checkpoint_path``, a classification
    checkpoint of any supported format, is loaded into the full model first (its names, its
    converters), everything but the dropped head (and stages after the last map) required."""
    model = entrypoint(**kwargs)
    backbone = FeatureListNet(model, out_indices)
    if checkpoint_path:
        from common.checkpoint import load_weights
        load_weights(model, checkpoint_path, arch=name, unused=backbone.dropped_params)  # logs what it drops
    return backbone
