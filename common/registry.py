"""Model registry: ``@register_model`` on an entrypoint, ``create_model(name)`` to build it."""
import difflib
import fnmatch
import logging

_MODELS = {}
_PRETRAINED_CFGS = {}  # name -> its entry in the model file's ``default_cfgs`` (timm's convention)
_logger = logging.getLogger(__name__)


def register_model(fn):
    """Register a model entrypoint under its function name."""
    name = fn.__name__
    if name in _MODELS and _MODELS[name] is not fn:
        _logger.warning("model %s registered twice; the later definition wins", name)
    _MODELS[name] = fn
    cfgs = fn.__globals__.get("default_cfgs") or {}  # the entrypoint's own module, as timm reads it
    if name in cfgs:
        _PRETRAINED_CFGS[name] = cfgs[name]
    return fn


def pretrained_cfg(name):
    """``name``'s pretrained_cfg (input size, mean/std, crop_pct, interpolation, first_conv, classifier,
    architecture) without building the net; None for an unknown name or one without ``default_cfgs``."""
    if name not in list_models() or name not in _PRETRAINED_CFGS:
        return None
    return dict(_PRETRAINED_CFGS[name], architecture=name)


def _import_families():
    """Load the families listed in the top-level ``families.py`` (``common.family.import_families``)
    and check that every model a family record names is a registered one."""
    from common.family import families, import_families
    import_families()
    for record in families():
        unknown = [m for m in record.models if m not in _MODELS]
        if unknown:
            raise ValueError(f"family {record.name}: models not registered: {', '.join(unknown)}")


def list_models(filter=""):  # pylint: disable=redefined-builtin
    """Sorted names of registered models, optionally filtered by a wildcard."""
    _import_families()
    names = sorted(_MODELS)
    return [n for n in names if fnmatch.fnmatch(n, filter)] if filter else names


def is_model(name):
    return name in list_models()


def model_entrypoint(name):
    """The entrypoint for ``name``; unknown names raise with the valid ones listed."""
    names = list_models()
    if name not in _MODELS:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"Unknown model '{name}'.{hint} Valid models: {', '.join(names)}")
    return _MODELS[name]


def create_model(name, num_classes=1000, checkpoint_path="", features_only=False, out_indices=None, image_size=None,
                 **kwargs):
    """Build a registered model; optionally load a checkpoint (any supported format).

    ``features_only``: the backbone, returning a tuple of feature maps (``out_indices`` into its
    ``feature_info``, None: all); a classification checkpoint loads into it, its head dropped.
    ``image_size``: the input side it will be given, refused (``ConfigError``, one line naming the
    nearest sizes it takes) when the net's strides cannot take it (``common.input_size``)."""
    if image_size is not None:
        from common.input_size import check_image_size
        model_entrypoint(name)
        indices = [out_indices] if isinstance(out_indices, int) else list(out_indices or [])
        check_image_size(name, image_size, max(indices) + 1 if features_only and indices else None)
    if features_only:
        from common.features import create_features_model
        return create_features_model(model_entrypoint(name), name, out_indices, checkpoint_path,
                                     num_classes=num_classes, **kwargs)
    net = model_entrypoint(name)(num_classes=num_classes, **kwargs)
    if checkpoint_path:
        from common.checkpoint import load_weights
        load_weights(net, checkpoint_path, arch=name)
    return net
