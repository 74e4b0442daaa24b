"""One way to build a model variant, and the preprocessing it was trained with (timm's
``build_model_with_cfg`` / ``pretrained_cfg`` / ``resolve_data_config``).

A variant's ``pretrained_cfg`` is its entry in its model file's ``default_cfgs``: ``input_size``,
``mean``/``std``, ``crop_pct``, ``interpolation``, ``first_conv`` and ``classifier`` (parameter-name
prefixes), plus ``architecture`` (the registered name) once built. Imports no MindSpore.
"""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Config keys a pretrained_cfg can fill when the user set none (see resolve_data_config).
DATA_KEYS = ("image_size", "crop_pct", "interpolation", "mean", "std")


def build_model_with_cfg(model_cls, variant, pretrained_cfg, **kwargs):
    """``model_cls(**kwargs)`` with ``net.pretrained_cfg``: the variant's cfg, its registered name as
    ``architecture`` and the ``num_classes`` it was built with. Names no parameter and wraps nothing,
    so checkpoint names are the class's own."""
    net = model_cls(**kwargs)
    net.pretrained_cfg = dict(pretrained_cfg, architecture=variant,
                              num_classes=kwargs.get("num_classes", pretrained_cfg.get("num_classes")))
    return net


def resolve_data_config(cfg, net_or_pretrained_cfg):
    """The DATA_KEYS for a model: a value in ``cfg`` (present and not None) wins, else the model's
    ``pretrained_cfg`` gives it; keys neither has are left out (the config default stays)."""
    pretrained = getattr(net_or_pretrained_cfg, "pretrained_cfg", net_or_pretrained_cfg) or {}
    from_model = {}
    if pretrained.get("input_size"):
        from_model["image_size"] = int(pretrained["input_size"][-1])
    if pretrained.get("crop_pct") is not None:
        from_model["crop_pct"] = float(pretrained["crop_pct"])
    if pretrained.get("interpolation"):
        from_model["interpolation"] = str(pretrained["interpolation"])
    for key in ("mean", "std"):
        if pretrained.get(key) is not None:
            from_model[key] = [float(v) for v in pretrained[key]]
    given = {k: cfg.get(k) for k in DATA_KEYS if cfg.get(k) is not None}
    return {**from_model, **given}
