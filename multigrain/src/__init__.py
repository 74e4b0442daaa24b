"""MultiGrain: ResNet-50 + GeM, mix loss, repeated augmentation, THOR, retrieval metrics.

Registering the family imports no trainer: the hooks (``task``, which imports THOR) are named, and
loaded by ``common.family.hooks_for`` on first use."""
from common.family import Family, register_family
from multigrain.src.config_keys import CONFIG_KEYS
from multigrain.src.multigrain import EmbeddingHead, MultiGrain, MultiGrainOutputs, multigrain, multigrain_resnet50
from multigrain.src.multigrain import feature_sides
from multigrain.src.multigrain import _from_torch_resnet

__all__ = ["EmbeddingHead", "MultiGrain", "MultiGrainOutputs", "multigrain", "multigrain_resnet50", "FAMILY"]

FAMILY = register_family(Family(
    name="multigrain",
    models=("multigrain_resnet50", "multigrain"),
    default_config="resnet50_imagenet2012_config.yaml",
    config_keys=CONFIG_KEYS,
    hooks="multigrain.src.task:HOOKS",
    weight_maps={"torch": _from_torch_resnet},
    # GeM's p may be absent from a checkpoint (a ModelZoo ResNet-50 has no pool.p): kept as configured
    checkpoint_optional=("pool.p",),
    feature_sides=feature_sides,
    export_heads=("embedding",),  # export_network: the L2-normalised GeM embedding instead of the logits
))
