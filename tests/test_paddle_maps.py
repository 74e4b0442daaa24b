"""PaddleClas -> timm / official PeleeNet names: every key of every Paddle model maps, shape for shape.

Works on the JSON fixtures only (no model code): ``paddle_state_dicts.json`` lists what
PaddleClas's models hold, ``reference_state_dicts.json`` what timm's DLAs and the official PeleeNet
hold; our models use the reference names.
"""
import json

import numpy as np
import pytest

from common.paddle import (PADDLE_IGNORED_KEYS, paddle_archs, paddle_array_to_torch, paddle_key_map,
                           paddle_key_to_torch as paddle_to_official_peleenet_key,
                           paddle_key_to_torch as paddle_to_timm_dla_key, paddle_to_torch_state_dict)
from common.weights.paddle_reader import read_pdparams

# fixture model -> reference model it must load into (PeleeNet: PaddleClas and flytocc ports)
REFERENCE_OF = {"DLA34": "dla34", "DLA46_c": "dla46_c", "DLA46x_c": "dla46x_c", "DLA60": "dla60",
                "DLA60x": "dla60x", "DLA60x_c": "dla60x_c", "DLA102": "dla102", "DLA102x": "dla102x",
                "DLA102x2": "dla102x2", "DLA169": "dla169", "PeleeNet": "peleenet",
                "PeleeNet_c37": "peleenet", "PeleeNet_flytocc": "peleenet",
                "PeleeNet_flytocc_c37": "peleenet"}
REFERENCE_CLASSES = 1000


@pytest.fixture(scope="module")
def paddle_models(fixtures_dir):
    return json.loads((fixtures_dir / "paddle_state_dicts.json").read_text())["models"]


@pytest.fixture(scope="module")
def references(fixtures_dir):
    return json.loads((fixtures_dir / "reference_state_dicts.json").read_text())


def _reference_params(reference, class_num):
    """Reference parameters (torch names -> shape) for a head of ``class_num`` classes."""
    out = {}
    for key, shape in reference["state_dict"]:
        if key.endswith("num_batches_tracked"):  # torch-only counter, no parameter of ours
            continue
        if shape and shape[0] == REFERENCE_CLASSES:  # classifier rows follow the class count
            shape = [class_num, *shape[1:]]
        out[key] = tuple(shape)
    return out


def test_fixture_models_are_all_known(paddle_models):
    assert set(paddle_models) == set(REFERENCE_OF)
    archs = paddle_archs()
    assert set(archs) == {name for name in REFERENCE_OF if not name.endswith(("_c37", "_flytocc"))}
    for paddle_name, ours in archs.items():
        assert ours == REFERENCE_OF[paddle_name]


@pytest.mark.parametrize("model", sorted(REFERENCE_OF))
def test_every_paddle_key_maps_shape_for_shape(model, paddle_models, references):
    paddle = paddle_models[model]
    reference = _reference_params(references[REFERENCE_OF[model]], paddle["class_num"])
    key_fn = paddle_key_map(REFERENCE_OF[model])  # the map the converter uses for this model
    mapped = {}
    for key, shape in paddle["state_dict"]:
        torch_key = key_fn(key)
        assert torch_key is not None, f"{model}: '{key}' is a weight but was dropped"
        assert torch_key in reference, f"{model}: '{key}' -> '{torch_key}', not a reference key"
        assert torch_key not in mapped, f"{model}: '{key}' and '{mapped[torch_key]}' both -> '{torch_key}'"
        # a zero-memory stand-in array, to check the layout change (Linear [in, out] -> [out, in])
        torch_shape = paddle_array_to_torch(key, np.broadcast_to(np.float32(0), shape)).shape
        assert torch_shape == reference[torch_key], f"{model}: '{key}' {shape} vs '{torch_key}'"
        mapped[torch_key] = key
    missing = sorted(set(reference) - set(mapped))
    assert not missing, f"{model}: reference parameters no Paddle key fills: {missing}"


def test_ignored_keys(paddle_models):
    for key in PADDLE_IGNORED_KEYS:
        assert paddle_to_timm_dla_key(key) is None
        assert paddle_to_official_peleenet_key(key) is None
    assert all("@@" not in key for model in paddle_models.values() for key, _ in model["state_dict"])


def test_examples_from_the_sources():
    """The renames spelled out: BN statistics, nothing else (module paths are the same)."""
    assert paddle_to_timm_dla_key("level3.tree1.root.bn._mean") == "level3.tree1.root.bn.running_mean"
    assert paddle_to_timm_dla_key("level3.tree1.root.bn._variance") == "level3.tree1.root.bn.running_var"
    assert paddle_to_timm_dla_key("level2.project.0.weight") == "level2.project.0.weight"
    assert paddle_to_timm_dla_key("fc.bias") == "fc.bias"
    assert (paddle_to_official_peleenet_key("features.stemblock.stem1.norm._mean")
            == "features.stemblock.stem1.norm.running_mean")
    linear = np.arange(6, dtype=np.float32).reshape(3, 2)  # Paddle Linear(3 -> 2): [in, out]
    np.testing.assert_array_equal(paddle_array_to_torch("classifier.weight", linear), linear.T)
    conv = np.zeros((4, 3, 1, 1), np.float32)
    assert paddle_array_to_torch("fc.weight", conv) is conv


def test_real_pdparams_converts_to_the_timm_state_dict(fixtures_dir, references):
    state = read_pdparams(fixtures_dir / "paddleclas_dla46_c.pdparams")
    state["StructuredToParameterName@@"] = {}  # as if a reader had kept it: must be dropped
    torch_state, ignored = paddle_to_torch_state_dict(state, paddle_to_timm_dla_key)
    assert ignored == ["StructuredToParameterName@@"]
    assert {k: v.shape for k, v in torch_state.items()} == _reference_params(references["dla46_c"], 1000)


def test_two_keys_onto_one_is_an_error():
    state = {"a.bn.running_mean": np.zeros(2), "a.bn._mean": np.zeros(2)}
    with pytest.raises(ValueError, match="map twice onto 'a.bn.running_mean'"):
        paddle_to_torch_state_dict(state, paddle_to_timm_dla_key)
