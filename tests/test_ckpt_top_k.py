"""``ckpt_save_policy: top_k`` (keep_checkpoint_max k): the k checkpoints with the best eval top-1 stay
(ties: the newer), ranked in ckpt/checkpoints_index.json, also across a --resume.

Two levels: the ranking callback fed chosen top-1 values (every tie case decided by hand), and a real
run of dla/train.py (4 evaluated epochs, k = 2, the last two epochs a --resume) whose kept files must
be the two best of the eval lines it printed."""
import json
import re
from types import SimpleNamespace

import pytest

import common  # noqa: F401  (CPU fast path first)
from common.ckpt_policy import INDEX_NAME, TopKCheckpoints, read_index
from conftest import run_script
from test_recipe_train_e2e import QUIET, recipe  # noqa: F401  (the tiny recipe's fixture)


class _Saver:
    """Stands for CheckpointSaver: writes an empty file per epoch and hands it over."""

    def __init__(self, directory):
        self.directory, self.new = str(directory), []

    def save(self, epoch, within=0, name=None):
        path = f"{self.directory}/m-{epoch}_{within or 5}.ckpt" if name is None else f"{self.directory}/{name}"
        open(path, "w").close()
        self.new.append((path, epoch, within))

    def take_saved(self):
        new, self.new = self.new, []
        return new


def _context(epoch):
    return SimpleNamespace(original_args=lambda: SimpleNamespace(cur_epoch_num=epoch))


def _epochs(tmp_path, top1s, keep=2, split=None, stray=False):
    """Save + evaluate one epoch per value; ``split``: a new ranker (a --resume) after that many epochs."""
    saver, history = _Saver(tmp_path), []
    eval_cb = SimpleNamespace(history=history)
    ranker = TopKCheckpoints(saver, eval_cb, keep)
    for epoch, top1 in enumerate(top1s, 1):
        if epoch - 1 == split:
            ranker = TopKCheckpoints(saver, eval_cb, keep, resumed_at=(split, 0))
        if stray and epoch == 2:  # a mid-epoch save: a resume point, not ranked
            saver.save(1, within=2, name="m-2_2.ckpt")
            ranker.on_train_step_end(None)
        saver.save(epoch)
        history.append((epoch, {"top_1_accuracy": top1}))
        ranker.on_train_epoch_end(_context(epoch))
    return sorted(p.name for p in tmp_path.glob("*.ckpt"))


@pytest.mark.parametrize("top1s,kept", [
    ([0.6, 0.9, 0.6, 0.7], ["m-2_5.ckpt", "m-4_5.ckpt"]),    # the two best
    ([0.8, 0.8, 0.5, 0.8], ["m-2_5.ckpt", "m-4_5.ckpt"]),    # three tied: the newer two
    ([0.9, 0.1, 0.2, 0.3], ["m-1_5.ckpt", "m-4_5.ckpt"]),    # the oldest is the best: kept
])
@pytest.mark.parametrize("split", [None, 2])
def test_top_k_keeps_the_best(tmp_path, top1s, kept, split):
    assert _epochs(tmp_path, top1s, split=split) == kept
    index = read_index(str(tmp_path))
    assert sorted(e["file"] for e in index) == kept
    assert all(e["top1"] == top1s[e["epoch"] - 1] for e in index)


def test_unranked_save_goes_once_a_newer_is_ranked(tmp_path):
    assert _epochs(tmp_path, [0.5, 0.6, 0.7], keep=2, stray=True) == ["m-2_5.ckpt", "m-3_5.ckpt"]


def test_files_outside_the_index_are_left(tmp_path):
    (tmp_path / "m-9_5.ckpt").write_text("")      # not this run's (no index entry)
    (tmp_path / "best.ckpt").write_text("")
    assert _epochs(tmp_path, [0.1, 0.2, 0.3]) == ["best.ckpt", "m-2_5.ckpt", "m-3_5.ckpt", "m-9_5.ckpt"]


def test_top_k_without_eval_is_refused_in_one_line(repo_root, tmp_path, capsys):
    from common.engine import run_main, train
    with pytest.raises(SystemExit) as stop:
        run_main(train, ["--ckpt_save_policy", "top_k", "--eval_during_train", "False", "--data_path",
                         str(tmp_path / "missing"), "--output_dir", str(tmp_path / "out")],
                 str(repo_root / "config" / "dla_demo_config.yaml"))
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert stop.value.code == 2 and len(err) == 1 and "needs --eval_during_train True" in err[0], err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- a real run, resumed

@pytest.mark.slow
def test_top_k_run_with_resume(recipe, tmp_path, demo_data):
    """test_recipe_train_e2e's tiny recipe on 16 training images (2 steps an epoch), evaluated every epoch."""
    train = tmp_path / "train16.txt"
    train.write_text("\n".join((demo_data / "train_list.txt").read_text().splitlines()[:16]) + "\n")
    out = tmp_path / "out"
    args = ["dla/train.py", "--config_path", *recipe("out", "--cls_label_path_train", train, "--eval_during_train",
                                                     "True", "--ckpt_save_policy", "top_k", "--keep_checkpoint_max", 2)]
    first = run_script(*args, env=QUIET)  # epochs 1..2
    second = run_script(*args, "--epoch_size", "4", "--resume", out / "ckpt" / "dla46_c-2_2.ckpt", env=QUIET)
    printed = {int(e): float(v) for e, v in re.findall(r"epoch: (\d+) eval: .*?top_1_accuracy: ([\d.]+)",
                                                       first.stdout + second.stdout)}
    assert sorted(printed) == [1, 2, 3, 4]
    best = sorted(printed, key=lambda e: (printed[e], e), reverse=True)[:2]
    kept = sorted(p.name for p in (out / "ckpt").glob("dla46_c-*.ckpt"))
    assert kept == sorted(f"dla46_c-{e}_2.ckpt" for e in best), (printed, kept)
    index = json.loads((out / "ckpt" / INDEX_NAME).read_text())["checkpoints"]
    assert {e["epoch"]: round(e["top1"], 4) for e in index} == {e: printed[e] for e in best}
    assert (out / "ckpt" / "best.ckpt").is_file()
