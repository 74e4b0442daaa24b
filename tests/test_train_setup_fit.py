"""engine.train's seam for another trainer (TaskHooks.create_trainer; THOR plugs in here): a trainer made
of common.loop.run_loop and a plain TrainOneStepCell gets the shared resume, EMA, deterministic data,
run counters and checkpoint names. And the THOR refusals, one line each, before any data check."""
import os

import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path first)
import mindspore as ms

from common.config import parse_args
from common.engine import run_main, train
from common.family import TaskHooks
from common.trainer import Trainer
from conftest import run_script

STEPS, BATCH = 5, 12  # 60 training images
BASE = """model: dla46_c
num_classes: 10
device_target: CPU
mode: PYNATIVE
seed: 1
image_size: 32
crop_pct: 1.0
batch_size: 12
num_parallel_workers: 1
scale: [0.5, 1.0]
optimizer: momentum
lr_scheduler: cosine
lr: 0.05
warmup_epochs: 0
weight_decay: 0.0001
epoch_size: 2
log_interval: 5
keep_checkpoint_max: 5
eval_during_train: False
deterministic: True
ema_decay: 0.9
"""


def loop_trainer(cfg, setup):
    """A trainer that does not go through mindspore's Model, as THOR's does."""
    from mindspore import nn
    from common.trainer import eval_model
    from common.loop import run_loop
    optimizer = nn.Momentum(setup.net.trainable_params(), ms.Tensor(np.array(setup.lr, np.float32)), 0.9,
                            weight_decay=cfg.weight_decay)
    step = nn.TrainOneStepCell(nn.WithLossCell(setup.net, setup.loss), optimizer)
    step.set_train(True)

    def fit(epochs, dataset, callbacks, initial_epoch, dataset_sink_mode):
        assert not dataset_sink_mode
        run_loop(step, dataset, epochs, callbacks, initial_epoch)
    return Trainer(train_network=step, optimizer=optimizer, lr=setup.lr, fit=fit,
                   eval_model=eval_model(setup.net, setup.loss), label=" with a loop")


@pytest.fixture()
def config(tmp_path, demo_data):
    lines = (demo_data / "train_list.txt").read_text().splitlines()
    (tmp_path / "train.txt").write_text("\n".join(lines[:STEPS * BATCH]) + "\n")
    path = tmp_path / "loop.yaml"
    path.write_text(BASE + f"data_path: {demo_data}\ncls_label_path_train: {tmp_path / 'train.txt'}\n"
                    f"cls_label_path_val: {tmp_path / 'train.txt'}\n")
    return path


def train_with_loop(argv):
    """engine.train with loop_trainer, in a child process (set_deterministic holds once per process)."""
    cfg = parse_args(argv[1:], argv[0])
    return train(cfg, TaskHooks(create_trainer=loop_trainer))


def _train(config, out, *extra):
    code = ("import sys; sys.path[:0] = ['tests']; from test_train_setup_fit import train_with_loop; "
            "train_with_loop(sys.argv[1:])")
    return run_script("-c", code, config, "--output_dir", out, *extra, env={"GLOG_v": "3"}).stdout


def _state(path):
    return {k: v.asnumpy() for k, v in ms.load_checkpoint(str(path)).items()}


@pytest.mark.slow
def test_a_loop_trainer_resumes_bit_identically_with_the_shared_checkpoints(config, tmp_path):
    out = _train(config, tmp_path / "full")
    assert f"training dla46_c with a loop on CPU x1: {STEPS} steps/epoch, epochs 1..2" in out
    assert f"epoch: 2 step: {STEPS}/{STEPS}, loss:" in out               # the shared progress line
    ckpt = tmp_path / "full" / "ckpt"
    # the names Model-trained runs give (CheckpointSaver: <model>-E_S.ckpt, ema-E_S.ckpt)
    assert sorted(os.listdir(ckpt)) == [f"dla46_c-1_{STEPS}.ckpt", f"dla46_c-2_{STEPS}.ckpt",
                                        f"ema-1_{STEPS}.ckpt", f"ema-2_{STEPS}.ckpt"]
    assert (tmp_path / "full" / "config.yaml").is_file()

    first = ckpt / f"dla46_c-1_{STEPS}.ckpt"
    out = _train(config, tmp_path / "resumed", "--resume", first)
    assert f"resumed from {first} after epoch 1" in out and "epochs 2..2" in out

    name = f"dla46_c-2_{STEPS}.ckpt"
    want, got = _state(ckpt / name), _state(tmp_path / "resumed" / "ckpt" / name)
    assert set(want) == set(got)
    assert any(k.startswith("moments.") for k in want) and any(k.startswith("ema.") for k in want)
    assert int(got["step_num"]) == 2 * STEPS and int(got["epoch_num"]) == 2 and int(got["global_step"].reshape(-1)[0]) == 2 * STEPS
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


@pytest.mark.parametrize("extra, needle", [
    (["--gradient_accumulation_steps", "2"], "THOR does not accumulate gradients"),
    (["--dataset_sink_mode", "True"], "use --dataset_sink_mode False"),
    (["--clip_grad", "norm"], "THOR does not clip gradients"),
])
def test_thor_refuses_what_it_cannot_do_in_one_line(repo_root, tmp_path, capsys, extra, needle):
    """Through the shared entry (hooks found by cfg.model), before any data check: data_path does not exist."""
    config = repo_root / "config" / "resnet50_imagenet2012_GPU_Thor_config.yaml"
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda cfg, hooks: pytest.fail("THOR refusal expected"),
                 ["--data_path", str(tmp_path / "missing"), "--output_dir", str(tmp_path / "out"), *extra],
                 str(config))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("WARNING: num_parallel")]
    assert len(lines) == 1 and needle in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_thor_trainer_checkpoint_resumes_into_a_new_thor_trainer(repo_root, tmp_path, capsys):
    """THOR cannot step on CPU (no ThorIm2Col kernel), but its trainer builds here: what a THOR run saves
    (weights, THOR statistics, both optimizers' state) loads back through the shared --resume."""
    from mindspore import Tensor
    from common.checkpoint import save_checkpoint_atomic
    from common.loss import create_loss
    from common.resume import resume_training, set_optimizer_step
    from common.trainer import TrainSetup
    from common.training_state import ResumePoint
    from multigrain.src.task import HOOKS
    from multigrain.src.thor import thor_trainer

    cfg = parse_args(["--num_classes", "10", "--amp_level", "O0", "--batch_size", "6", "--repeat_aug", "3"],
                     str(repo_root / "config" / "resnet50_imagenet2012_GPU_Thor_config.yaml"))

    def build():
        net = common.create_model(cfg.model, num_classes=10)
        setup = TrainSetup(hooks=HOOKS, out_dir="", ckpt_dir="", rank=0, group_size=1, point=ResumePoint(),
                           accumulation=1, net=net, loss=create_loss(cfg, net, HOOKS.loss), train_ds=None, rest_ds=None,
                           batches=4, steps=4, lr_cfg=None, lr_warning="", lr=[])
        return HOOKS.create_trainer(cfg, setup)

    first = build()
    names = [p.name for p in first.train_network.get_parameters()]
    assert len(names) == len(set(names))                     # a checkpoint with two 'global_step's cannot load
    assert thor_trainer.__name__ in repr(first.fit)
    cov = "network.net.conv1.matrix_a_cov"
    params = dict(first.train_network.parameters_and_names())
    params[cov].set_data(Tensor(np.full(params[cov].shape, 7.0, np.float32)))
    path = tmp_path / "thor-1_4.ckpt"
    save_checkpoint_atomic(first.train_network, str(path), append_dict={"epoch_num": 1, "step_num": 4})

    second = build()
    resume_training(second.train_network, str(path), 1)
    set_optimizer_step(second.optimizer, ResumePoint(1), 4, 1, 0)
    restored = dict(second.train_network.parameters_and_names())
    assert float(restored[cov].asnumpy().ravel()[0]) == 7.0
    assert int(second.optimizer.global_step.asnumpy().reshape(-1)[0]) == 4  # THOR's lr/damping index
