"""A family's hooks return what they want and change nothing they are handed: every registered family's
hooks run here on a read-only config, a setup that refuses assignment and a read-only result, and each
does its work (the keys it wants changed come back from check_config; THOR's pretrained start comes
back from resume_point instead of being written into the setup)."""
import dataclasses
import types

import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path first)
from common.config import ReadOnlyConfig
from common.engine import settle_config
from common.family import TaskHooks, families, hooks_for
from common.loss import create_loss
from common.trainer import TrainSetup
from common.training_state import ResumePoint
from conftest import ROOT

N_IMAGES = 6
# what a family's config needs here beyond the tiny run every family gets (its own keys, so they exist)
FAMILY_ARGV = {"multigrain": ["--use_label_smooth", "False", "--retrieval", "True"]}


class RefusingSetup:
    """A ``TrainSetup`` that fails the test on any assignment (whether or not TrainSetup is frozen)."""

    def __init__(self, setup):
        object.__setattr__(self, "_setup", setup)

    def __getattr__(self, name):
        return getattr(self._setup, name)

    def __setattr__(self, name, value):
        raise AssertionError(f"a hook assigned setup.{name}: it should return what it wants instead")


def _setup(hooks, cfg, net, point=None):
    return RefusingSetup(TrainSetup(
        hooks=hooks, out_dir="", ckpt_dir="", rank=0, group_size=1, point=point or ResumePoint(), accumulation=1,
        net=net, loss=create_loss(cfg, net, hooks.loss), train_ds=None, rest_ds=None, batches=4, steps=4,
        lr_cfg=cfg, lr_warning="", lr=[0.01] * 4 * cfg.epoch_size))


def _settled(argv, config):
    """The config as the spine hands it to a task and its hooks: settled, then read-only."""
    cfg, hooks = settle_config(argv, config)
    return ReadOnlyConfig(cfg), hooks


@pytest.fixture(scope="module")
def small(demo_data, tmp_path_factory):
    """Six validation images as a list file (retrieval's query and gallery) and as predict's paths."""
    tmp = tmp_path_factory.mktemp("hooks")
    lines = (demo_data / "val_list.txt").read_text().splitlines()[:N_IMAGES]
    (tmp / "six.txt").write_text("\n".join(lines) + "\n")
    return {"tmp": tmp, "list": tmp / "six.txt", "images": [str(demo_data / line.split()[0]) for line in lines]}


def test_the_config_the_hooks_get_refuses_every_change():
    cfg = ReadOnlyConfig(lr=0.1)
    for change in (lambda: setattr(cfg, "lr", 1.0), lambda: cfg.__setitem__("lr", 1.0),
                   lambda: cfg.update(lr=1.0), lambda: cfg.pop("lr"), lambda: cfg.setdefault("new", 1)):
        with pytest.raises(TypeError, match="read-only"):
            change()
    assert cfg == {"lr": 0.1} and cfg.replace(lr=0.5).lr == 0.5 and cfg.lr == 0.1


@pytest.mark.parametrize("family", [record.name for record in families()])
def test_every_hook_of_every_family_changes_nothing_it_is_handed(family, demo_data, small, monkeypatch):
    import mindspore as ms
    from common import create_model, runtime
    # MindSpore sets the device once per process, before its first kernel: earlier tests have run some
    monkeypatch.setattr(runtime, "init_device", lambda cfg: (0, 1))
    record = next(r for r in families() if r.name == family)
    net = create_model(record.models[0], num_classes=10)
    ckpt = small["tmp"] / f"{family}.ckpt"
    ms.save_checkpoint(net, str(ckpt))
    argv = ["--model", record.models[0], "--num_classes", "10", "--device_target", "CPU", "--data_path", str(demo_data),
            "--image_size", "32", "--batch_size", str(N_IMAGES), "--num_parallel_workers", "1",
            "--cls_label_path_val", str(small["list"]), "--ckpt_file", str(ckpt),
            "--predict_path", ",".join(small["images"]), *FAMILY_ARGV.get(family, [])]
    if family == "multigrain":
        argv += ["--query_list", str(small["list"]), "--gallery_list", str(small["list"]),
                 "--embeddings", str(small["tmp"] / "emb.npy")]
    cfg, hooks = _settled(argv, str(ROOT / "config" / record.default_config))
    result = types.MappingProxyType({"top_1_accuracy": 0.1, "top_5_accuracy": 0.5})  # read-only too

    calls = {
        "check_config": lambda: hooks.check_config(cfg),
        "resume_point": lambda: hooks.resume_point(cfg),
        "create_train_sampler": lambda: hooks.create_train_sampler(cfg, 0, 1, 4 * N_IMAGES),
        "create_train_network": lambda: hooks.create_train_network(cfg, net, create_loss(cfg, net, hooks.loss)),
        "create_trainer": lambda: hooks.create_trainer(cfg, _setup(hooks, cfg, net)),
        "prepare_eval_net": lambda: hooks.prepare_eval_net(cfg, net),
        "export_network": lambda: hooks.export_network(cfg, net),
        "after_eval": lambda: hooks.after_eval(cfg, net, result),
        "predict": lambda: hooks.predict(cfg, hooks),
    }
    callable_fields = [f.name for f in dataclasses.fields(TaskHooks) if f.name != "loss"]
    assert sorted(calls) == sorted(callable_fields), "a new TaskHooks field: run it here too"
    assert create_loss(cfg, net, hooks.loss) is not None
    returned = {name: call() for name, call in calls.items() if getattr(hooks, name) is not None}
    assert cfg == ReadOnlyConfig(settle_config(argv, str(ROOT / "config" / record.default_config))[0])
    if family == "multigrain":  # what its hooks want, returned rather than written
        assert cfg.label_smooth_factor == 0.0 and returned["check_config"]["label_smooth_factor"] == 0.0
        assert cfg.lr_scheduler == "linear" and returned["check_config"]["lr_scheduler"] == "linear"
        assert set(returned["after_eval"]) >= {"mAP", "recall@1", "recall@5"} and set(result) == {
            "top_1_accuracy", "top_5_accuracy"}
        assert np.load(returned["predict"]["embeddings"], mmap_mode="r").shape == (N_IMAGES, 2048)


def test_thor_starts_after_its_pretrained_epochs_through_resume_point(repo_root):
    """THOR from weights that trained 3 epochs: the point comes back from the hook (the spine builds the
    datasets from it), and the THOR trainer builds on a setup it cannot change."""
    from common import create_model
    cfg, hooks = _settled(["--num_classes", "10", "--batch_size", "6", "--pretrain_epoch_size", "3"],
                          str(repo_root / "config" / "resnet50_imagenet2012_GPU_Thor_config.yaml"))
    point = hooks.resume_point(cfg)
    assert point.epoch == 3 and point.within == 0
    net = create_model(cfg.model, num_classes=10)
    trainer = hooks.create_trainer(cfg, _setup(hooks, cfg, net, point))
    assert "THOR" in trainer.label
    steps = 4  # _setup's steps per epoch: THOR's schedules start 3 epochs in
    assert trainer.optimizer.learning_rate.learning_rate.shape[0] == len(trainer.lr) - 3 * steps
