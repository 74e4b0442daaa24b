"""EMA with gradient accumulation, through ``dla/train.py``: one EMA update per optimizer step.

A tiny run (8 images, batch 2, ``gradient_accumulation_steps`` 2: 2 optimizer steps) saves a
training checkpoint after every optimizer step, holding the weights w_k and the average e_k. The
average must follow e_k = d * e_(k-1) + (1 - d) * w_k from e_0 = the weights training started from
(a --pretrained file written here), computed in numpy from those observed weights. An average
updated after every batch instead differs: from step 1 on for the BatchNorm statistics (they move
every batch), from step 2 on for every weight (d^2 e + d(1-d) w_(k-1) + (1-d) w_k)."""
import numpy as np
import pytest
from PIL import Image

import common  # noqa: F401  (CPU fast path before the first MindSpore op)
import mindspore as ms

from common import create_model
from conftest import run_script

# decay not 0.5, so that an update with decay and 1 - decay swapped is caught too
DECAY, STEPS, ACCUMULATION, BATCH, CLASSES = 0.75, 2, 2, 2, 4


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("ema_accumulation")
    rng = np.random.default_rng(0)
    for i in range(STEPS * ACCUMULATION * BATCH):
        folder = base / "data" / "train" / f"c{i % CLASSES}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    start = base / "start.ckpt"
    ms.save_checkpoint(create_model("dla46_c", num_classes=CLASSES), str(start))
    # A process of its own, as a user runs it (MindSpore's device cannot be set again in a process that
    # has run kernels). 64 px: at 32 the last BatchNorm normalises 1x1 maps over a batch of 2 and the
    # weights explode. Deterministic: the same run every time.
    run_script(
        "dla/train.py", "--config_path", "config/dla_demo_config.yaml", "--num_classes", str(CLASSES),
        "--data_path", str(base / "data"), "--image_size", "64", "--batch_size", str(BATCH),
        "--gradient_accumulation_steps", str(ACCUMULATION), "--epoch_size", "1", "--ema_decay", str(DECAY),
        "--pretrained", str(start), "--lr", "0.01", "--warmup_epochs", "0", "--lr_scheduler", "constant",
        "--deterministic", "True", "--save_checkpoint_steps", "1", "--keep_checkpoint_max", "0",
        "--eval_during_train", "False", "--num_parallel_workers", "1", "--mode", "PYNATIVE",
        "--output_dir", str(base / "out"))
    return start, base / "out" / "ckpt"


def test_ema_updates_once_per_optimizer_step(run):
    start, ckpt_dir = run
    average = {name: value.asnumpy().astype(np.float64) for name, value in ms.load_checkpoint(str(start)).items()}
    for step in range(1, STEPS + 1):
        saved = {k: v.asnumpy() for k, v in ms.load_checkpoint(str(ckpt_dir / f"dla46_c-1_{step}.ckpt")).items()}
        assert int(saved["step_num"]) == step * ACCUMULATION  # batches seen: the file is the one we mean
        moved, wrong = 0, []
        for name, previous in average.items():
            weights = saved[name].astype(np.float64)
            moved += not np.allclose(weights, previous, rtol=1e-4, atol=1e-6)
            average[name] = DECAY * previous + (1 - DECAY) * weights
            # float32 arithmetic on the device: tolerance on the scale of the terms, not of their sum
            error = np.abs(saved[f"ema.{name}"] - average[name]).max()
            if error > 1e-5 * max(np.abs(previous).max(), np.abs(weights).max()) + 1e-7:
                wrong.append(f"{name} (off by {error:.3g})")
        assert not wrong, f"ema after optimizer step {step}: {len(wrong)} of {len(average)} wrong: {wrong[:5]}"
        assert moved > len(average) // 2, f"step {step}: only {moved} of {len(average)} tensors moved: a weak check"
