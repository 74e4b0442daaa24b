"""MultiGrain: ResNet-50 + GeM, mix loss, repeated augmentation, THOR, retrieval metrics."""
from multigrain.src.multigrain import EmbeddingHead, MultiGrain, MultiGrainOutputs, multigrain, multigrain_resnet50

__all__ = ["EmbeddingHead", "MultiGrain", "MultiGrainOutputs", "multigrain", "multigrain_resnet50"]
