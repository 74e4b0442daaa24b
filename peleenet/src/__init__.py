"""PeleeNet: the model and the family record the spine reads (``common.family``)."""
from common.family import Family, register_family
from peleenet.src import peleenet

FAMILY = register_family(Family(
    name="peleenet",
    models=tuple(peleenet.default_cfgs),
    default_config="peleenet_imagenet2012_config.yaml",
    feature_sides=peleenet.feature_sides,
    source_names={"paddle": {"PeleeNet": "peleenet"}},
))
