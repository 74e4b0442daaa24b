"""Deep Layer Aggregation: the variants and the family record the spine reads (``common.family``)."""
from common.family import Family, register_family
from dla.src import dla

FAMILY = register_family(Family(
    name="dla",
    models=tuple(dla.default_cfgs),
    default_config="dla34_imagenet2012_config.yaml",
    feature_sides=dla.feature_sides,
    source_names={"paddle": {"DLA34": "dla34", "DLA46_c": "dla46_c", "DLA46x_c": "dla46x_c", "DLA60": "dla60",
                             "DLA60x": "dla60x", "DLA60x_c": "dla60x_c", "DLA102": "dla102", "DLA102x": "dla102x",
                             "DLA102x2": "dla102x2", "DLA169": "dla169"}},
))
