"""PeleeNet entry points and configs: the published recipe (REFERENCE.md), the wiring of the four
scripts, and the two ways of naming a dataset (list files / class folders) giving the same data."""
import collections
import importlib
import os

import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path before MindSpore)
from common import cli
from common.config import parse_args
from conftest import ROOT

CONFIG = os.path.join(ROOT, "config", "peleenet_{}_config.yaml")


def _cfg(name, *argv):
    return parse_args(list(argv), CONFIG.format(name))


def test_imagenet_config_is_the_published_recipe():
    cfg = _cfg("imagenet2012")
    assert cfg.model == "peleenet" and cfg.num_classes == 1000
    assert cfg.optimizer == "momentum" and cfg.momentum == 0.9
    # lr 0.18 belongs to a total batch of 512 (256 x 2 GPUs); the config runs 8 devices.
    assert cfg.lr == pytest.approx(0.18) and cfg.batch_size * 8 == 512
    assert cfg.lr_scheduler == "cosine" and cfg.min_lr == 0.0 and cfg.warmup_epochs == 0
    assert cfg.epoch_size == 120 and cfg.weight_decay == pytest.approx(1e-4)
    assert cfg.interpolation == "bilinear" and cfg.image_size == 224 and cfg.crop_pct == 0.875
    # no mixup / cutmix / random erasing / label smoothing / AutoAugment
    assert cfg.label_smooth_factor == 0.0 and cfg.re_prob == 0.0 and cfg.auto_augment == ""
    assert not any(cfg.get(k) for k in ("mixup", "cutmix"))
    assert cfg.drop_rate == pytest.approx(0.05)


def test_finetune_config_and_its_checkpoint_override(tmp_path):
    cfg = _cfg("finetune")
    assert cfg.lr == pytest.approx(0.005) and cfg.epoch_size == 20 and cfg.lr_scheduler == "cosine"
    assert cfg.model == "peleenet" and cfg.label_smooth_factor == 0.0
    ckpt = str(tmp_path / "peleenet-120.ckpt")
    assert _cfg("finetune", "--pretrained", ckpt).pretrained == ckpt


def test_finetune_without_weights_is_refused_not_trained_from_scratch(demo_data, tmp_path):
    from conftest import run_script
    proc = run_script("peleenet/train.py", "--config_path", CONFIG.format("finetune"), "--data_path", demo_data,
                      "--device_target", "CPU", "--output_dir", tmp_path, check=False, timeout=300)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip() and "WARNING" not in line]
    assert proc.returncode == 2
    assert len(lines) == 1 and lines[0].startswith("error: config error: this recipe finetunes trained weights: "
                                                   "pass --pretrained PATH")
    assert not (tmp_path / "ckpt").exists()


def test_demo_config_input_size_runs_through_peleenet():
    """32 px is PeleeNet's smallest input (stride 32): the demo config's size must give 10 logits."""
    import mindspore as ms
    from common import create_model
    cfg = _cfg("demo")
    assert cfg.image_size % 32 == 0 and cfg.num_classes == 10 and cfg.hflip == 0.0
    net = create_model(cfg.model, num_classes=cfg.num_classes)
    net.set_train(False)
    x = np.random.RandomState(0).randn(2, 3, cfg.image_size, cfg.image_size).astype(np.float32)
    out = net(ms.Tensor(x)).asnumpy()
    assert out.shape == (2, 10) and np.isfinite(out).all()


@pytest.mark.parametrize("task", ["train", "eval", "export", "predict"])
def test_entry_point_runs_its_task_with_the_peleenet_config(task, monkeypatch):
    calls = []
    monkeypatch.setitem(cli._TASKS, task, lambda argv, config, hooks: calls.append((argv, config)))
    module = importlib.import_module(f"peleenet.{task}")
    module.main(["--epoch_size", "1"])
    (argv, config), = calls
    assert argv == ["--epoch_size", "1"]
    assert os.path.basename(config) == "peleenet_imagenet2012_config.yaml" and os.path.isfile(config)


def _on_disk(root, split):
    """Ground truth from the files themselves: (absolute path, class folder as int)."""
    folder = root / split
    return sorted((str(p.resolve()), int(p.parent.name)) for p in folder.glob("*/*.png"))


def _normalised(samples):
    return sorted((os.path.realpath(p), label) for p, label in samples)


def test_list_files_and_folders_give_the_same_samples(demo_data):
    from common.data import dataset_samples
    folders = _cfg("demo", "--data_path", str(demo_data))
    lists = _cfg("demo", "--data_path", str(demo_data), "--cls_label_path_train", "train_list.txt",
                 "--cls_label_path_val", "val_list.txt")
    for split in ("train", "val"):
        truth = _on_disk(demo_data, split)
        n_lines = len((demo_data / f"{split}_list.txt").read_text().split())
        assert len(truth) * 2 == n_lines
        assert _normalised(dataset_samples(folders, split)) == truth
        assert _normalised(dataset_samples(lists, split)) == truth


def test_list_file_and_folder_datasets_yield_the_same_labels(demo_data):
    from common.data import create_dataset
    base = ["--data_path", str(demo_data), "--num_parallel_workers", "1"]
    configs = [_cfg("demo", *base),
               _cfg("demo", *base, "--cls_label_path_train", "train_list.txt", "--cls_label_path_val", "val_list.txt")]
    truth = collections.Counter(label for _, label in _on_disk(demo_data, "val"))
    n_train = len(_on_disk(demo_data, "train"))
    for cfg in configs:
        val = create_dataset(cfg, "val")
        labels, shapes = collections.Counter(), set()
        for image, label in val.create_tuple_iterator(output_numpy=True):
            labels.update(label.tolist())
            shapes.add(image.shape[1:])
        assert labels == truth
        assert shapes == {(3, cfg.image_size, cfg.image_size)}
        assert create_dataset(cfg, "train").get_dataset_size() == n_train // cfg.batch_size
