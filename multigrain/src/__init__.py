"""MultiGrain: ResNet-50 + GeM, mix loss, repeated augmentation, THOR, retrieval metrics."""
from multigrain.src.multigrain import EmbeddingHead, MultiGrain, MultiGrainOutputs, multigrain, multigrain_resnet50

__all__ = ["EmbeddingHead", "MultiGrain", "MultiGrainOutputs", "multigrain", "multigrain_resnet50"]

# The card's config keys, found by common.config for any multigrain model (see common.registry).
from multigrain.src.task import EXTRA_DEFAULTS as CONFIG_KEYS  # noqa: E402
