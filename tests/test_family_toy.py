"""Adding a family is one folder plus one line in the top-level families.py: a toy family written in a
temporary folder trains and evaluates through the shared entry files, with nothing changed in common/."""
import os
import re
import shutil
import subprocess
import sys
import textwrap

from conftest import ROOT

TOY_SRC = '''
"""A toy family: conv-BN-ReLU, global pool, Dense; its record registers it with the spine."""
import mindspore.nn as nn
import mindspore.ops as ops

from common.builder import IMAGENET_MEAN, IMAGENET_STD, build_model_with_cfg
from common.family import Family, TaskHooks, register_family
from common.registry import register_model

default_cfgs = {"toy_tiny": dict(input_size=(3, 32, 32), crop_pct=1.0, interpolation="bilinear",
                                 mean=IMAGENET_MEAN, std=IMAGENET_STD, first_conv="stem.0", classifier="fc")}


class ToyNet(nn.Cell):
    def __init__(self, num_classes=10, width=16, drop_rate=0.0):
        super().__init__()
        self.stem = nn.SequentialCell([nn.Conv2d(3, width, 3, stride=2, pad_mode="pad", padding=1),
                                       nn.BatchNorm2d(width), nn.ReLU()])
        self.num_features = width
        self.dropout = nn.Dropout(p=drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = nn.Dense(width, num_classes) if num_classes > 0 else nn.Identity()

    def get_classifier(self):
        return self.fc

    def reset_classifier(self, num_classes):
        self.fc = nn.Dense(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x):
        return self.stem(x)

    def forward_head(self, x, pre_logits=False):
        x = ops.mean(x, (2, 3))
        return x if pre_logits else self.fc(self.dropout(x))

    def construct(self, x):
        return self.forward_head(self.forward_features(x))


@register_model
def toy_tiny(num_classes=10, **kwargs):
    return build_model_with_cfg(ToyNet, "toy_tiny", default_cfgs["toy_tiny"], num_classes=num_classes, **kwargs)


def check_config(cfg):
    print(f"toy hooks: width {cfg.toy_width}", flush=True)


FAMILY = register_family(Family(name="toy", models=("toy_tiny",), default_config="toy_demo_config.yaml",
                                config_keys={"toy_width": (16, "a key only the toy family has", "[1, inf)")},
                                hooks=TaskHooks(check_config=check_config)))
'''

TOY_CONFIG = """model: toy_tiny
num_classes: 10
device_target: CPU
mode: GRAPH
output_dir: ./out
batch_size: 25
num_parallel_workers: 1
hflip: 0.0
lr: 0.05
epoch_size: 2
save_checkpoint: True
eval_during_train: True
eval_interval: 1
log_interval: 2
toy_width: 8
"""


def _slice(src, dst, count):
    dst.write_text("\n".join(src.read_text().splitlines()[:count]) + "\n")
    return dst


def _run(root, script, *args):
    """``python <root>/toy/<script>`` as a user with the repository on PYTHONPATH would run it."""
    proc = subprocess.run([sys.executable, str(root / "toy" / script), *map(str, args)], cwd=root,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{script}: {proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_a_toy_family_trains_and_evaluates_through_the_shared_entry_files(demo_data, tmp_path):
    root = tmp_path / "zoo"
    (root / "toy" / "src").mkdir(parents=True)
    (root / "config").mkdir()
    (root / "families.py").write_text('FAMILIES = ("toy",)\n')
    (root / "toy" / "__init__.py").write_text("")
    (root / "toy" / "src" / "__init__.py").write_text(textwrap.dedent(TOY_SRC))
    for task in ("train", "eval"):
        shutil.copyfile(ROOT / "dla" / f"{task}.py", root / "toy" / f"{task}.py")
    (root / "config" / "toy_demo_config.yaml").write_text(TOY_CONFIG)
    train_list = _slice(demo_data / "train_list.txt", tmp_path / "train.txt", 100)
    val_list = _slice(demo_data / "val_list.txt", tmp_path / "val.txt", 50)
    data = ["--data_path", demo_data, "--cls_label_path_val", val_list]

    out = _run(root, "train.py", *data, "--cls_label_path_train", train_list)  # the default config: the record's
    assert "toy hooks: width 8" in out
    assert re.search(r"epoch: 2 step: 4/4, loss: \d+\.\d+", out), out[-2000:]
    best = root / "out" / "ckpt" / "best.ckpt"
    assert best.is_file()

    out = _run(root, "eval.py", *data, "--ckpt_file", best)
    result = re.search(r"^result: \{'top_1_accuracy': ([\d.]+), 'top_5_accuracy': ([\d.]+)\} ckpt= (.+)$", out, re.M)
    assert result and result.group(3) == str(best)
    assert 0.0 <= float(result.group(1)) <= float(result.group(2)) <= 1.0

    changed = subprocess.run(["git", "status", "--porcelain", "common/"], cwd=ROOT, capture_output=True, text=True)
    assert changed.returncode == 0 and changed.stdout == ""
