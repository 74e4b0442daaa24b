"""Each MultiGrain yaml holds the ModelZoo MultiGrain card's values (REFERENCE.md), parses with the
shared parser, and the card's Linear schedule comes out of the shared lr code exactly."""
import os

import pytest
import yaml

import common  # noqa: F401
from common.engine import settle_config
from common.lr import create_lr_schedule

# ModelZoo MultiGrain card (REFERENCE.md, MultiGrain section).
CARD = dict(num_classes=1001, loss_scale=1024, momentum=0.9, weight_decay=1e-4, epoch_size=50,
            pretrain_epoch_size=0, save_checkpoint=True, save_checkpoint_epochs=5, keep_checkpoint_max=10,
            warmup_epochs=2, lr_decay_mode="linear", use_label_smooth=True, label_smooth_factor=0.1,
            lr_init=0.05672, lr_decay=4.9687, lr_end_epoch=70, damping_init=0.02345, damping_decay=0.5467,
            frequency=834)
CARD_BATCH_PER_DEVICE = 30           # the card's table (its config list says 480 in total)
PAPER = dict(gem_p=3.0, mix_lambda=0.5, margin=0.2, beta_init=1.2, sampling_cutoff=0.5,
             nonzero_loss_cutoff=1.4, repeat_aug=3)
CONFIGS = {"resnet50_imagenet2012_config.yaml": ("momentum", "Ascend"),
           "resnet50_imagenet2012_Ascend_Thor_config.yaml": ("thor", "Ascend"),
           "resnet50_imagenet2012_GPU_Thor_config.yaml": ("thor", "GPU")}


def _yaml(repo_root, name):
    with open(os.path.join(repo_root, "config", name), encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_card_values(repo_root, name):
    data = _yaml(repo_root, name)
    optimizer, device = CONFIGS[name]
    assert data["model"] == "multigrain_resnet50"
    assert data["optimizer"].lower() == optimizer and data["device_target"] == device
    for key, value in dict(CARD, **PAPER).items():
        got = data[key].lower() if isinstance(data[key], str) else data[key]
        assert got == value, key
    assert data["batch_size"] == CARD_BATCH_PER_DEVICE and data["batch_size"] % data["repeat_aug"] == 0
    if optimizer == "thor":
        assert data["split_indices"] == [26, 53]


@pytest.mark.parametrize("name", sorted(CONFIGS) + ["multigrain_demo_config.yaml"])
def test_every_key_is_known_to_the_parser(repo_root, name):
    cfg, _ = settle_config([], os.path.join(repo_root, "config", name))
    data = _yaml(repo_root, name)
    assert cfg.model in common.list_models()
    assert cfg.batch_size % cfg.repeat_aug == 0
    assert all(cfg[k] == pytest.approx(v) for k, v in data.items() if isinstance(v, float))


def test_card_linear_schedule_through_the_shared_lr(repo_root):
    """0 -> lr_init over 2 epochs, then the straight line to 0 at epoch 70, cut at epoch 50."""
    from multigrain.src.lr_generator import get_linear_lr
    cfg, _ = settle_config([], os.path.join(repo_root, "config", "resnet50_imagenet2012_config.yaml"))
    steps = 7
    lr = create_lr_schedule(cfg, steps)
    assert len(lr) == 50 * steps
    assert lr[0] == 0.0 and lr[7] == pytest.approx(0.05672 / 2)
    assert lr[14] == pytest.approx(0.05672)                                   # peak at epoch 2
    assert lr[14 + 34 * 7] == pytest.approx(0.05672 / 2)                      # epoch 36, half-way to 70
    assert lr[-1] == pytest.approx(0.05672 * (70 - 50 + 1 / 7) / 68, rel=1e-6)
    modelzoo = get_linear_lr(0.0, 0.0, 0.05672, 2, 70, steps)[:50 * steps]
    assert lr == pytest.approx(list(modelzoo), rel=1e-5, abs=1e-9)


def test_use_label_smooth_false_turns_smoothing_off(repo_root):
    cfg, _ = settle_config(["--use_label_smooth", "False"],
                           os.path.join(repo_root, "config", "resnet50_imagenet2012_config.yaml"))
    assert cfg.label_smooth_factor == 0.0
