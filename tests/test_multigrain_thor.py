"""THOR on CPU, as far as it goes there: network conversion, optimizer construction, the
second-order/first-order step pattern of the training loop, and the one-line CPU refusal."""
import numpy as np
import pytest

import common  # noqa: F401
import mindspore as ms
import mindspore.dataset as ds
import mindspore.nn as nn
from mindspore.train import Callback

from common import create_model
from common.config import Config
from conftest import run_script
from multigrain.src.thor import ThorTrainStep, create_thor_optimizer, run_thor_training, thor_device_error, \
    thor_phase

CARD = Config(momentum=0.9, weight_decay=1e-4, loss_scale=1024.0, batch_size=30, split_indices=[26, 53],
              frequency=834)


@pytest.fixture(scope="module")
def thor_net():
    from multigrain.src.mix_loss import MixLoss, MultiGrainWithLoss
    net = create_model("multigrain_resnet50", num_classes=1001)
    steps = 70 * 4
    optimizer = create_thor_optimizer(net, np.full(steps, 0.05, np.float32), np.full(steps, 0.02, np.float32),
                                      CARD)
    loss = MixLoss(1001)
    beta_opt = nn.Momentum(loss.trainable_params(), 0.05, 0.9, loss_scale=CARD.loss_scale)
    step = ThorTrainStep(MultiGrainWithLoss(net, loss), optimizer, beta_opt, CARD.loss_scale)
    return net, optimizer, step


def test_network_conversion(thor_net):
    net, _, _ = thor_net
    cells = [cell for _, cell in net.cells_and_names()]
    # ResNet-50: 53 convolutions (stem + 16 blocks x 3 + 4 shortcuts) and the fc.
    assert sum(isinstance(c, nn.Conv2dThor) for c in cells) == 53
    assert sum(isinstance(c, nn.DenseThor) for c in cells) == 1
    assert not any(type(c) in (nn.Conv2d, nn.Dense) for c in cells)
    a_matrices = [p.name for p in net.get_parameters() if "matrix_a" in p.name]
    assert len(a_matrices) == 54                           # split_indices [26, 53] index these
    assert "conv1.matrix_a_cov" in a_matrices and "end_point.matrix_a" in a_matrices
    # Parameter names of the weights survive the conversion (checkpoints stay compatible).
    assert "layer1.0.down_sample_layer.0.weight" in {p.name for p in net.trainable_params()}


def test_optimizer_construction(thor_net):
    net, optimizer, step = thor_net
    assert type(optimizer).__name__ == "ThorGpu"           # CPU context: the non-Ascend optimizer
    assert optimizer.get_frequency() == 834
    assert len(optimizer.parameters) == len(net.trainable_params()) == 161
    assert len(optimizer.matrix_a_cov) == 54 and len(optimizer.matrix_g_cov) == 54
    assert "pool.p" not in {p.name for p in optimizer.parameters}
    # The train step also updates beta through a separate optimizer.
    assert step.num_thor == 161 and step.weights[-1].name.endswith("beta_margin")
    step.set_thor(False, "train1")
    assert optimizer.thor is False and step.phase == "train1"


def test_thor_phase_pattern():
    flags = [thor_phase(s, 4)[0] for s in range(10)]
    assert flags == [True, False, False, False, True, False, False, False, True, False]
    assert thor_phase(834, 834) == (True, "train0") and thor_phase(835, 834) == (False, "train1")


class _FakeStep:
    """Stands in for ThorTrainStep (THOR kernels do not exist on CPU) and records the phases."""

    def __init__(self):
        self.network = self.optimizer = None
        self.calls, self.switches = [], []
        self.thor = None

    def set_thor(self, thor, phase):
        self.thor = thor
        self.switches.append(phase)

    def __call__(self, x):
        self.calls.append(self.thor)
        return ms.Tensor(1.0)


class _Steps(Callback):
    def __init__(self):
        self.seen = []

    def on_train_step_end(self, run_context):
        cb = run_context.original_args()
        self.seen.append((cb.cur_epoch_num, cb.cur_step_num))


def test_training_loop_switches_phase_every_frequency_steps():
    dataset = ds.NumpySlicesDataset({"x": np.zeros((5, 2), np.float32)}, shuffle=False).batch(1)
    step, steps_cb = _FakeStep(), _Steps()
    run_thor_training(step, dataset, epochs=3, frequency=4, callbacks=[steps_cb])
    assert step.calls == [s % 4 == 0 for s in range(15)]
    assert step.switches[:3] == ["train0", "train1", "train0"]
    assert steps_cb.seen[0] == (1, 1) and steps_cb.seen[-1] == (3, 15)
    step, steps_cb = _FakeStep(), _Steps()                 # resuming keeps the global step
    run_thor_training(step, dataset, epochs=3, frequency=4, callbacks=[steps_cb], initial_epoch=2)
    assert step.calls == [s % 4 == 0 for s in range(10, 15)] and steps_cb.seen[0] == (3, 11)


def test_device_message():
    assert thor_device_error("GPU") is None and thor_device_error("Ascend") is None
    message = thor_device_error("CPU")
    assert "THOR needs Ascend or GPU" in message and "config/resnet50_imagenet2012_config.yaml" in message


@pytest.mark.parametrize("config", ["resnet50_imagenet2012_Ascend_Thor_config.yaml",
                                    "resnet50_imagenet2012_GPU_Thor_config.yaml"])
def test_thor_config_on_cpu_exits_with_one_line(repo_root, tmp_path, config):
    proc = run_script("multigrain/train.py", "--config_path", repo_root / "config" / config,
                      "--device_target", "CPU", "--data_path", tmp_path, check=False, timeout=300)
    # the card's 8 input workers are lowered to this machine's cores with a warning line
    lines = [line for line in (proc.stdout + proc.stderr).splitlines()
             if line.strip() and not line.startswith("WARNING: num_parallel_workers")]
    assert proc.returncode != 0
    assert len(lines) == 1, lines
    assert "THOR needs Ascend or GPU" in lines[0] and "config/resnet50_imagenet2012_config.yaml" in lines[0]
