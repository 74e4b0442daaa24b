"""A PaddleClas DLA yaml's values carry over; the recipe keys are documented in
docs/config_keys.md, which equals what scripts/config_table.py generates."""
import logging
import os
import subprocess
import sys

import pytest

from common.config import DEFAULTS, parse_args
from common.errors import ConfigError

# The layout of PaddleClas's legacy configs/DLA/*.yaml (flat keys plus sections).
PADDLE_YAML = """\
mode: 'train'
ARCHITECTURE:
    name: 'DLA46_c'
pretrained_model: "/weights/DLA46_c_pretrained"
model_save_dir: "./output/"
classes_num: 102
total_images: 1020
save_interval: 2
validate: True
valid_interval: 3
epochs: 40
topk: 3
image_shape: [3, 192, 192]
use_mix: True
ls_epsilon: -1
use_distillation: False
checkpoints: ""
last_epoch: -1

LEARNING_RATE:
    function: 'Piecewise'
    params:
        lr: 0.0125
        decay_epochs: [20, 30]
        gamma: 0.1

OPTIMIZER:
    function: 'Momentum'
    params:
        momentum: 0.9
    regularizer:
        function: 'L2'
        factor: 0.00003

TRAIN:
    batch_size: 64
    num_workers: 4
    file_list: "./dataset/flowers102/train_list.txt"
    data_dir: "./dataset/flowers102/"
    shuffle_seed: 0
    transforms:
        - DecodeImage:
            to_rgb: True
        - RandCropImage:
            size: 192
    mix:
        - MixupOperator:
            alpha: 0.3

VALID:
    batch_size: 32
    num_workers: 4
    file_list: "./dataset/flowers102/val_list.txt"
    data_dir: "./dataset/flowers102/"
    transforms:
        - DecodeImage:
            to_rgb: True
"""


def _parse(tmp_path, text, *argv):
    path = tmp_path / "paddle.yaml"
    path.write_text(text)
    return parse_args(["--config_path", str(path), *argv])


def test_a_paddleclas_yaml_carries_over(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        cfg = _parse(tmp_path, PADDLE_YAML)
    expected = {"model": "dla46_c", "pretrained": "/weights/DLA46_c_pretrained", "output_dir": "./output/",
                "num_classes": 102, "save_checkpoint_epochs": 2, "eval_during_train": True, "eval_interval": 3,
                "epoch_size": 40, "topk": 3, "image_size": 192, "label_smooth_factor": 0.0, "resume": "",
                "lr_scheduler": "piecewise", "lr": 0.0125, "lr_epochs": [20, 30], "lr_gamma": 0.1,
                "optimizer": "momentum", "momentum": 0.9, "weight_decay": 0.00003,
                "batch_size": 64, "num_parallel_workers": min(4, os.cpu_count()),  # capped to the cores
                "cls_label_path_train": "./dataset/flowers102/train_list.txt",
                "data_path": "./dataset/flowers102/", "eval_batch_size": 32,
                "cls_label_path_val": "./dataset/flowers102/val_list.txt",
                "mixup": 0.3,  # TRAIN.mix's alpha is more specific than use_mix's default 0.2
                "mode": "GRAPH"}  # Paddle's run mode is not our execution mode
    assert {k: cfg[k] for k in expected} == expected
    ignored = " ".join(r.getMessage() for r in caplog.records)
    assert "TRAIN.transforms" in ignored and "VALID.transforms" in ignored and "TRAIN.shuffle_seed" in ignored


def test_use_mix_alone_switches_mixup_on_and_ls_epsilon_keeps_its_value(tmp_path):
    cfg = _parse(tmp_path, "use_mix: True\nls_epsilon: 0.1\n")
    assert cfg.mixup == 0.2 and cfg.label_smooth_factor == 0.1
    assert _parse(tmp_path, "use_mix: False\n").mixup == 0.0


def test_train_mix_operators_follow_use_mix(tmp_path):
    mix = "TRAIN:\n    mix:\n        - CutmixOperator:\n            alpha: 0.8\n"
    assert (_parse(tmp_path, mix + "use_mix: True\n").cutmix, _parse(tmp_path, mix + "use_mix: True\n").mixup) == (0.8, 0.0)
    off = _parse(tmp_path, mix + "use_mix: False\n")
    assert (off.cutmix, off.mixup) == (0.0, 0.0)


def test_paddle_keys_on_the_command_line(tmp_path):
    cfg = parse_args(["--classes_num", "37", "--epochs", "3", "--use_mix", "True", "--image_shape", "[3,64,64]"])
    assert (cfg.num_classes, cfg.epoch_size, cfg.mixup, cfg.image_size) == (37, 3, 0.2, 64)


@pytest.mark.parametrize("text, needle", [
    ("use_distillation: True\n", "distillation is not supported"),
    ("mode: eager\n", "mode must be GRAPH or PYNATIVE"),
    ("LEARNING_RATE:\n    function: 'OneCycle'\n", "LEARNING_RATE.function 'OneCycle' has no equivalent"),
])
def test_what_has_no_equivalent_is_refused_in_one_line(tmp_path, text, needle):
    with pytest.raises(ConfigError) as err:
        _parse(tmp_path, text)
    assert needle in err.value.message and "\n" not in err.value.message


def test_exponent_floats_from_yaml_and_command_line(tmp_path):
    """PyYAML reads 1e-4 (no dot) as a string; float keys still take it."""
    cfg = _parse(tmp_path, "weight_decay: 1e-4\n", "--lr_gamma", "1e30")
    assert (cfg.weight_decay, cfg.lr_gamma) == (1e-4, 1e30)


def test_recipe_keys_exist_with_their_defaults():
    assert {k: DEFAULTS[k][0] for k in ("mixup", "cutmix", "mix_prob", "switch_prob", "ema_decay", "amp_level",
                                        "loss_scale", "loss_scale_mode", "auto_augment", "re_prob")} == {
        "mixup": 0.0, "cutmix": 0.0, "mix_prob": 1.0, "switch_prob": 0.5, "ema_decay": 0.0, "amp_level": "O0",
        "loss_scale": 1.0, "loss_scale_mode": "fixed", "auto_augment": "", "re_prob": 0.0}


def test_docs_table_is_generated_from_the_defaults(repo_root):
    proc = subprocess.run([sys.executable, str(repo_root / "scripts" / "config_table.py"), "--check"],
                          cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = (repo_root / "docs" / "config_keys.md").read_text()
    for key, (default, _) in DEFAULTS.items():
        assert f"| `{key}` |" in table, key
