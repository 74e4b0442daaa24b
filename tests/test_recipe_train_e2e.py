"""The recipe end to end through dla/train.py on the digits demo data (32 px, 40 training images,
batch 8: 5 steps an epoch): resume == uninterrupted, finetune to another class count, NaN stop,
one-line refusals."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path first)
import mindspore as ms

from common import create_model
from common.checkpoint import load_weights
from common.errors import WeightsError
from conftest import run_script

STEPS = 5
QUIET = {"GLOG_v": "3"}
BASE = """model: dla46_c
num_classes: 10
device_target: CPU
mode: PYNATIVE
seed: 1
image_size: 32
crop_pct: 1.0
batch_size: 8
num_parallel_workers: 1
hflip: 0.0
scale: [0.5, 1.0]
lr: 0.05
warmup_epochs: 0
weight_decay: 0.0001
label_smooth_factor: 0.1
epoch_size: 2
log_interval: 5
keep_checkpoint_max: 5
eval_during_train: False
"""


@pytest.fixture()
def recipe(tmp_path, demo_data):
    """A config file for tiny runs (40 training, 16 validation images) and the run helper."""
    lines = {split: (demo_data / f"{split}_list.txt").read_text().splitlines() for split in ("train", "val")}
    (tmp_path / "train.txt").write_text("\n".join(lines["train"][:8 * STEPS]) + "\n")
    (tmp_path / "val.txt").write_text("\n".join(lines["val"][:16]) + "\n")
    config = tmp_path / "recipe.yaml"
    config.write_text(BASE + f"data_path: {demo_data}\ncls_label_path_train: {tmp_path / 'train.txt'}\n"
                      f"cls_label_path_val: {tmp_path / 'val.txt'}\n")

    def args(out, *extra):
        return [str(config), "--output_dir", str(tmp_path / out), *map(str, extra)]
    return args


def train(repo_root, argv, check=True):
    return run_script(repo_root / "dla" / "train.py", "--config_path", *argv, env=QUIET, check=check)


def error_lines(proc):
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def _state(path):
    return {k: v.asnumpy() for k, v in ms.load_checkpoint(str(path)).items()}


@pytest.mark.slow
def test_resume_after_epoch_1_ends_like_an_uninterrupted_run(repo_root, recipe, tmp_path):
    """Everything random is on (shuffle, crop, RandAugment, erasing, mixup/cutmix, EMA, eval of the
    EMA between epochs). The epoch-1 checkpoint is all the state a run interrupted after epoch 1
    leaves (a kill during a save leaves the previous file: test_kill_9_...), so a fresh process
    resumes from the uninterrupted run's own epoch-1 file."""
    recipe_keys = ["--deterministic", "True", "--ema_decay", "0.9", "--mixup", "0.4", "--cutmix", "1.0",
                   "--auto_augment", "randaugment-m9-n2", "--re_prob", "0.25", "--eval_during_train", "True"]
    full = train(repo_root, recipe("full", *recipe_keys))
    assert "eval (ema):" in full.stdout
    first = tmp_path / "full" / "ckpt" / f"dla46_c-1_{STEPS}.ckpt"
    resumed = train(repo_root, recipe("resumed", *recipe_keys, "--resume", first))
    assert f"resumed from {first} after epoch 1" in resumed.stdout
    assert "epochs 2..2" in resumed.stdout

    name = f"dla46_c-2_{STEPS}.ckpt"
    want, got = _state(tmp_path / "full" / "ckpt" / name), _state(tmp_path / "resumed" / "ckpt" / name)
    assert set(want) == set(got)
    assert any(k.startswith("moments.") for k in want) and any(k.startswith("ema.") for k in want)
    assert int(got["step_num"]) == 2 * STEPS and int(got["epoch_num"]) == 2
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)
    # the EMA weights are their own checkpoints, loadable as a plain network
    for ema_file in ("ema_best.ckpt", f"ema-2_{STEPS}.ckpt"):
        load_weights(create_model("dla46_c", num_classes=10), str(tmp_path / "resumed" / "ckpt" / ema_file))


@pytest.mark.slow
def test_finetune_a_1000_class_checkpoint_to_10_classes(repo_root, recipe, tmp_path):
    ms.set_seed(7)
    source = create_model("dla46_c", num_classes=1000)
    ckpt = tmp_path / "dla46_c_1000.ckpt"
    ms.save_checkpoint(source, str(ckpt))

    # every weight but the classifier loads; the classifier keeps its fresh initialisation
    net = create_model("dla46_c", num_classes=10)
    skipped = load_weights(net, str(ckpt), arch="dla46_c", allow_new_head=True)
    assert sorted(skipped) == ["fc.bias", "fc.weight"]
    want = {p.name: p.asnumpy() for p in source.get_parameters()}
    for param in net.get_parameters():
        if param.name not in skipped:
            np.testing.assert_array_equal(param.asnumpy(), want[param.name], err_msg=param.name)
    assert net.fc.weight.shape[0] == 10

    proc = train(repo_root, recipe("ft", "--pretrained", ckpt, "--epoch_size", "1", "--eval_during_train", "True"))
    assert "classifier not loaded from" in proc.stderr and "class count differs, re-initialised" in proc.stderr
    assert "fc.weight" in proc.stderr and "fc.bias" in proc.stderr
    assert "eval: top_1_accuracy" in proc.stdout
    assert (tmp_path / "ft" / "ckpt" / f"dla46_c-1_{STEPS}.ckpt").exists()


@pytest.mark.slow
def test_a_checkpoint_of_another_architecture_is_refused(repo_root, recipe, tmp_path):
    ckpt = tmp_path / "dla34.ckpt"
    ms.save_checkpoint(create_model("dla34", num_classes=10), str(ckpt))
    with pytest.raises(WeightsError) as err:
        load_weights(create_model("dla46_c", num_classes=10), str(ckpt), arch="dla46_c", allow_new_head=True)
    message = str(err.value)
    assert "does not fit a dla46_c model" in message and "wrong shape" in message
    assert "level2.tree1.conv1.weight" in message or "base_layer.0.weight" in message

    proc = train(repo_root, recipe("bad", "--pretrained", ckpt), check=False)
    assert proc.returncode == 2
    errors = error_lines(proc)
    assert len(errors) == 1 and "does not fit a dla46_c model" in errors[0]


@pytest.mark.slow
def test_nan_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(repo_root, recipe, tmp_path):
    # epoch 1 trains normally; epoch 2's learning rate (0.05 * 1e30) blows the weights up
    proc = train(repo_root, recipe("nan", "--lr_scheduler", "piecewise", "--lr_epochs", "[1]",
                                   "--lr_gamma", "1e30", "--epoch_size", "3"), check=False)
    assert proc.returncode == 3, proc.stderr[-3000:]
    errors = error_lines(proc)
    assert len(errors) == 1 and "training stopped; the last good checkpoint is kept" in errors[0], errors
    assert "loss is nan" in errors[0] or "loss is inf" in errors[0] or "not finite" in errors[0]
    ckpts = sorted(os.listdir(tmp_path / "nan" / "ckpt"))
    assert ckpts == [f"dla46_c-1_{STEPS}.ckpt"], ckpts
    state = _state(tmp_path / "nan" / "ckpt" / ckpts[0])
    assert all(np.isfinite(v).all() for v in state.values() if v.dtype.kind == "f")


@pytest.mark.parametrize("extra, needle", [(["--amp_level", "O1"], "amp_level must be one of O0, O2, O3"),
                                           (["--auto_augment", "autoaug"], "auto_augment must be"),
                                           (["--loss_scale_mode", "dynamic"], "not supported on CPU")])
def test_unsupported_settings_stop_in_one_line(repo_root, recipe, extra, needle):
    proc = train(repo_root, recipe("refused", *extra), check=False)
    assert proc.returncode == 2
    errors = error_lines(proc)
    assert len(errors) == 1 and needle in errors[0], proc.stderr[-2000:]


SAVER = """
import sys
sys.path.insert(0, {root!r})
import common, numpy as np, mindspore as ms
from common.checkpoint import save_checkpoint_atomic
path = sys.argv[1]
for i in range(1, 1000000):
    # 8 arrays of 2M floats (64 MB), every value = i: a torn file would mix values or not load
    save_checkpoint_atomic([{{"name": f"p{{k}}", "data": ms.Tensor(np.full(2_000_000, i, np.float32))}}
                            for k in range(8)], path, append_dict={{"round": i}})
    print(i, flush=True)
"""


def test_kill_9_during_saving_leaves_a_loadable_checkpoint(repo_root, tmp_path):
    path = tmp_path / "model.ckpt"
    script = SAVER.format(root=str(repo_root))
    rng = np.random.default_rng(0)
    for attempt in range(3):
        proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True,
                                env=dict(os.environ, **QUIET))
        assert proc.stdout.readline().strip()  # at least one complete save (this run's or a previous one)
        time.sleep(float(rng.uniform(0.05, 0.6)))  # most of the loop's time is spent inside a save
        proc.kill()
        proc.wait()
        state = ms.load_checkpoint(str(path))
        round_ = int(state["round"].asnumpy())
        values = np.unique(np.concatenate([state[f"p{k}"].asnumpy() for k in range(8)]))
        assert values.tolist() == [float(round_)], (attempt, values[:5])
