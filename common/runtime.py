"""What every task needs at run time and nothing more: the device and the configured net (or its
backbone). Apart from the tasks so that ``common.predict`` and a family's task module can use it without
importing the trainer."""
from common.errors import UserError, WeightsError


def build_net(cfg, checkpoint="", allow_new_head=False):
    from common.checkpoint import load_weights
    from common.registry import create_model
    try:  # drop_rate always passed: the config's value is what runs (0 turns dropout off in every family)
        net = create_model(cfg.model, num_classes=cfg.num_classes, drop_rate=cfg.drop_rate)
    except ValueError as err:
        raise UserError(str(err)) from None
    if checkpoint:
        load_weights(net, checkpoint, arch=cfg.model, allow_new_head=allow_new_head)
    return net


def build_backbone(cfg, checkpoint=""):
    """``cfg.model`` as a backbone (``out_indices``; [] = every feature_info map), with the
    classification checkpoint's head dropped."""
    from common.registry import create_model
    try:
        return create_model(cfg.model, num_classes=cfg.num_classes, features_only=True,
                            out_indices=cfg.out_indices or None, checkpoint_path=checkpoint)
    except WeightsError:
        raise
    except ValueError as err:
        raise UserError(str(err)) from None


def init_device(cfg):
    from common.device import init_context
    return init_context(cfg.device_target, cfg.mode, cfg.run_distribute, cfg.device_id, cfg.seed)


def single_device(cfg):
    """A copy of ``cfg`` for one process (eval/export/predict outside a launcher)."""
    return cfg.replace(run_distribute=False)
