"""A distilled run under msrun on CPU, 2 ranks (scripts/run_distribute_train_cpu.sh): each rank's frozen teacher
distills its own shard (unlabeled images included), no checkpoint holds the teacher (rank 0 saves; the weights'
equality across ranks is test_launch_distributed_cpu's: the teacher adds no gradient), and a mid-epoch
checkpoint resumes under msrun to the end of the run."""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import msrun_env
from test_launch_distributed_cpu import free_port

pytestmark = pytest.mark.alone  # msrun's CPU collectives time out when another test crowds the CPU

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _launch(data, out, cwd, *extra):
    env = msrun_env(PYTHON=sys.executable, MASTER_PORT=str(free_port()))
    env.pop("DRY_RUN", None)
    return subprocess.run(
        ["bash", os.path.join(ROOT, "scripts", "run_distribute_train_cpu.sh"), str(data), "2",
         os.path.join(ROOT, "config", "dla_demo_config.yaml"), "--model_dir", os.path.join(ROOT, "dla"),
         "--image_size", "32", "--epoch_size", "1", "--batch_size", "16", "--eval_during_train", "False",
         "--num_parallel_workers", "1", "--output_dir", str(out), *map(str, extra)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_two_rank_distilled_run_and_its_resume(demo_data, dla_finetuned, tmp_path):
    import mindspore as ms
    from common import create_model
    from common.checkpoint import TEACHER_PREFIX
    lines = (demo_data / "train_list.txt").read_text().splitlines()
    (tmp_path / "train.txt").write_text("\n".join(lines[:96]) + "\n")  # 3 steps of 16 per rank
    (tmp_path / "extra.txt").write_text("\n".join(line.split()[0] for line in lines[96:128]) + "\n")  # +1 step
    keys = ["--cls_label_path_train", tmp_path / "train.txt", "--distill_unlabeled", tmp_path / "extra.txt",
            "--distill_teacher", "dla46_c", "--distill_teacher_ckpt", dla_finetuned.ckpt, "--distill_loss", "js",
            "--distill_alpha", "0.9", "--save_checkpoint_steps", "2", "--keep_checkpoint_max", "0"]
    first = _launch(demo_data, tmp_path / "out", tmp_path, *keys)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    log = (tmp_path / "train_parallel" / "msrun_log" / "worker_0.log").read_text(errors="replace")
    assert "on CPU x2: 4 steps/epoch" in log  # (96 labeled + 32 unlabeled) / 2 ranks / 16
    ckpt_dir = tmp_path / "out" / "ckpt_0"  # rank 0 saves
    final = ms.load_checkpoint(str(ckpt_dir / "dla46_c-1_4.ckpt"))
    trainable = {p.name for p in create_model("dla46_c", num_classes=10).trainable_params()}
    assert trainable <= set(final) and not any(k.startswith(TEACHER_PREFIX) for k in final)
    assert all(np.isfinite(final[name].asnumpy()).all() for name in trainable)

    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    second = _launch(demo_data, tmp_path / "out2", resumed_dir, *keys, "--resume", ckpt_dir / "dla46_c-1_2.ckpt")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    log = (resumed_dir / "train_parallel" / "msrun_log" / "worker_0.log").read_text(errors="replace")
    assert "resumed from" in log and "epoch 1 from step 3" in log
    assert (tmp_path / "out2" / "ckpt_0" / "dla46_c-1_4.ckpt").is_file()
