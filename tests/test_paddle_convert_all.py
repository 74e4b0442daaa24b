"""Every PaddleClas model's state_dict (as listed in paddle_state_dicts.json) converts into our net.

Stand-in arrays of the listed shapes go through the same strict converter a real ``.pdparams``
does, so a name or shape our models disagree on for any DLA variant or PeleeNet (1000 and 37
classes) fails here, without needing every checkpoint.
"""
import json

import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path before the first MindSpore op)
from common import create_model, list_models
from common.checkpoint import match_weights
from common.convert import to_net_names
from common.paddle import paddle_archs

VARIANTS = {**paddle_archs(), "PeleeNet_c37": "peleenet", "PeleeNet_flytocc": "peleenet",
            "PeleeNet_flytocc_c37": "peleenet"}


@pytest.fixture(scope="module")
def paddle_models(fixtures_dir):
    return json.loads((fixtures_dir / "paddle_state_dicts.json").read_text())["models"]


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(VARIANTS))
def test_paddle_state_dict_converts_into_our_net(model, paddle_models):
    ours = VARIANTS[model]
    if ours not in list_models():
        pytest.skip(f"{ours} is not registered yet")
    listed = paddle_models[model]
    # zero-memory stand-ins: the converter only looks at names and shapes here
    state = {key: np.broadcast_to(np.float32(0), shape) for key, shape in listed["state_dict"]}
    state["StructuredToParameterName@@"] = {}
    net = create_model(ours, num_classes=listed["class_num"])
    converted = match_weights(net, to_net_names(state, net, "paddle")).weights  # strict: raises on any misfit
    params = {p.name: tuple(p.shape) for p in net.get_parameters()}
    assert {k: v.shape for k, v in converted.items()} == params
