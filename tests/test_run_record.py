"""What a training run leaves behind (issue 26, docs/run_record.md): train.log, summary.csv, curves.png,
TensorBoard events, scripts/plot_runs.py, and progress lines of eval.py and convert_weights.py.

The end-to-end run: dla46_c on 16 digits (32 px, batch 8: 2 steps an epoch), 3 epochs with eval and EMA,
SIGKILLed in epoch 3 and resumed from its epoch-2 checkpoint into the same folder."""
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path first)
from common.curves import figure, read_summary
from common.engine import run_main, train
from conftest import ROOT, load_script
from test_recipe_train_e2e import BASE

QUIET = {"GLOG_v": "3"}
PNG = b"\x89PNG\r\n\x1a\n"
# test_recipe_train_e2e's tiny recipe, 3 epochs, a line per step, eval, EMA and TensorBoard
RECIPE = ["--epoch_size", 3, "--log_interval", 1, "--eval_during_train", True, "--ema_decay", 0.9,
          "--tensorboard", True]
STEP = re.compile(r"epoch: (\d+) step: \d+/\d+, loss: ([\d.]+), lr: ([\d.]+),")
EVAL = re.compile(r"epoch: (\d+) eval( \(ema\))?: top_1_accuracy: ([\d.]+),")


def _figures(lines):
    """{epoch: {"losses": [...], "lr": last lr, "eval_top1": ..., "ema_top1": ...}} of progress/eval lines."""
    found = {}
    for line in lines:
        step, score = STEP.match(line), EVAL.match(line)
        if step:
            epoch = found.setdefault(int(step[1]), {"losses": []})
            epoch["losses"].append(float(step[2]))
            epoch["lr"] = float(step[3])
        elif score:
            found[int(score[1])]["ema_top1" if score[2] else "eval_top1"] = float(score[3])
    return found


def _train_argv(config, out, *extra):
    return [sys.executable, str(ROOT / "dla" / "train.py"), "--config_path", str(config), "--output_dir", str(out),
            *map(str, RECIPE + list(extra))]


def _subsequence(short, long):
    it = iter(long)
    return all(line in it for line in short)


@pytest.mark.slow
def test_a_killed_and_resumed_run_leaves_one_row_per_epoch_matching_its_log(demo_data, tmp_path, capsys):
    lines = {split: (demo_data / f"{split}_list.txt").read_text().splitlines() for split in ("train", "val")}
    (tmp_path / "train.txt").write_text("\n".join(lines["train"][:16]) + "\n")
    (tmp_path / "val.txt").write_text("\n".join(lines["val"][:8]) + "\n")
    config = tmp_path / "recipe.yaml"
    config.write_text(BASE + f"data_path: {demo_data}\ncls_label_path_train: {tmp_path / 'train.txt'}\n"
                      f"cls_label_path_val: {tmp_path / 'val.txt'}\n")
    out = tmp_path / "run"

    proc = subprocess.Popen(_train_argv(config, out), cwd=ROOT, env=dict(os.environ, **QUIET),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    killed = []
    for line in proc.stdout:
        killed.append(line.rstrip("\n"))
        if line.startswith("epoch: 3 step: 1/2"):
            proc.send_signal(signal.SIGKILL)
            break
    assert proc.wait(timeout=60) == -signal.SIGKILL, killed[-5:]
    before = (out / "summary.csv").read_bytes()
    assert before.count(b"\n") == 3  # header + epochs 1, 2

    resumed = subprocess.run(_train_argv(config, out, "--resume", out / "ckpt" / "dla46_c-2_2.ckpt"), cwd=ROOT,
                             env=dict(os.environ, **QUIET), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    console = resumed.stdout.splitlines()

    # one row per epoch; the rows before the resumed epoch byte-identical
    after = (out / "summary.csv").read_bytes()
    assert after.startswith(before) and after.count(b"\n") == 4
    rows = read_summary(out / "summary.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3] and [r["step"] for r in rows] == [2, 4, 6]

    # each row's figures are those of the log lines of its epoch (1, 2: the killed run; 3: the resumed one)
    logged = {**{e: f for e, f in _figures(killed).items() if e < 3}, 3: _figures(console)[3]}
    for row in rows:
        want = logged[int(row["epoch"])]
        assert len(want["losses"]) == 2
        np.testing.assert_allclose(row["train_loss"], np.mean(want["losses"]), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(row["lr"], want["lr"], rtol=1e-5, atol=1e-6)
        for key in ("eval_top1", "ema_top1"):
            assert abs(row[key] - want[key]) <= 5e-5, (row, want)
        assert row["epoch_time_s"] > 0 and row["images_per_s"] > 0

    # train.log: the killed run's lines, then the resumed run's (appended), in the console's order
    log = (out / "train.log").read_text().splitlines()
    assert log[:len(killed)] == killed and _subsequence(console, log[len(killed):])

    # TensorBoard's own reader: epoch scalars at each epoch's last step, loss every step, no stale event
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    top1 = events.Scalars("epoch/eval_top1")
    assert [e.step for e in top1] == [2, 4, 6]
    np.testing.assert_allclose([e.value for e in top1], [r["eval_top1"] for r in rows], atol=1e-6)
    np.testing.assert_allclose([e.value for e in events.Scalars("epoch/train_loss")],
                               [r["train_loss"] for r in rows], rtol=1e-5)
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([e.value for e in loss], [x for e in (1, 2, 3) for x in logged[e]["losses"]],
                               atol=1e-5)

    # curves.png: a PNG, its panels' lines the summary's columns
    assert (out / "curves.png").read_bytes().startswith(PNG)
    loss_ax, lr_ax, top1_ax = figure({"run": rows}).axes
    assert [list(line.get_ydata()) for line in loss_ax.get_lines()] == [[r["train_loss"] for r in rows]]
    assert [line.get_label() for line in top1_ax.get_lines()] == ["run", "run (ema)"]
    assert list(top1_ax.get_lines()[1].get_xdata()) == [1, 2, 3]

    # eval.py on its best checkpoint: a progress line per batch, the last one's top-1 the result's
    from common.engine import evaluate
    capsys.readouterr()
    result = run_main(evaluate, ["--config_path", str(config), "--ckpt_file", str(out / "ckpt" / "best.ckpt"),
                                 "--batch_size", "4", "--log_interval", "1"], "")
    progress = [line for line in capsys.readouterr().out.splitlines() if line.startswith("eval: [")]
    assert [line.split("]")[0] for line in progress] == ["eval: [1/2", "eval: [2/2"]
    assert f"top-1: {result['top_1_accuracy']:.4f}," in progress[-1]


def _summary(path, rows):
    path.mkdir()
    header = "epoch,step,lr,train_loss,eval_top1,eval_top5,epoch_time_s,images_per_s\n"
    (path / "summary.csv").write_text(header + "".join(f"{e},{e * 10},{lr},{loss},{top1},,1.5,100\n"
                                                       for e, lr, loss, top1 in rows))


def _plot_runs():
    return load_script("scripts/plot_runs.py")


def test_plot_runs_overlays_each_run_named_in_the_legend(tmp_path, capsys):
    _summary(tmp_path / "cosine", [(1, 0.1, 2.0, 0.5), (2, 0.05, 1.0, ""), (3, 0.0, 0.5, 0.9)])
    _summary(tmp_path / "step", [(1, 0.1, 2.5, 0.4), (2, 0.1, 1.5, 0.6)])
    plot = _plot_runs()
    runs_dirs = [str(tmp_path / "cosine"), str(tmp_path / "step")]
    assert plot.main([*runs_dirs, "--out", str(tmp_path / "cmp" / "both.png")]) == 0
    assert (tmp_path / "cmp" / "both.png").read_bytes().startswith(PNG)

    loss_ax, lr_ax, top1_ax = figure(plot.load_runs(runs_dirs)).axes
    for ax in (loss_ax, lr_ax, top1_ax):
        assert [line.get_label() for line in ax.get_lines()] == ["cosine", "step"]
    assert [list(line.get_ydata()) for line in loss_ax.get_lines()] == [[2.0, 1.0, 0.5], [2.5, 1.5]]
    assert [list(line.get_xdata()) for line in top1_ax.get_lines()] == [[1, 3], [1, 2]]  # epoch 2 not evaluated
    assert list(top1_ax.get_lines()[0].get_ydata()) == [0.5, 0.9]

    capsys.readouterr()
    assert plot.main([str(tmp_path / "nothing"), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "has no summary.csv" in err[0], err


def test_tensorboard_without_its_package_stops_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import fails as if not installed
    with pytest.raises(SystemExit) as stop:
        run_main(train, ["--config_path", str(ROOT / "config" / "dla_demo_config.yaml"), "--tensorboard", "True",
                         "--output_dir", str(tmp_path / "out")], "")
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and "pip install tensorboard " in err[0], err
    assert not (tmp_path / "out").exists()


def test_eval_progress_lines_give_the_running_top1(capsys):
    import mindspore as ms
    import mindspore.dataset as ds
    from mindspore import nn
    from mindspore.train import Model
    from common.callbacks import EvalProgress
    from common.metrics import metrics

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6)).astype(np.float32), rng.integers(0, 8, 40).astype(np.int32)
    net = nn.Dense(6, 8)  # top-5 needs 5 classes or more
    model = Model(net, loss_fn=nn.SoftmaxCrossEntropyWithLogits(sparse=True), metrics=metrics())
    result = model.eval(ds.NumpySlicesDataset((x, y), ["x", "y"], shuffle=False).batch(4),
                        callbacks=[EvalProgress(log_interval=3)], dataset_sink_mode=False)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("eval: [")]
    assert [line.split("]")[0] for line in lines] == ["eval: [ 3/10", "eval: [ 6/10", "eval: [ 9/10", "eval: [10/10"]
    hits = net(ms.Tensor(x)).asnumpy().argmax(1) == y
    for line, batches in zip(lines, (3, 6, 9, 10)):
        assert f"top-1: {hits[:batches * 4].mean():.4f}," in line and "images/s" in line
    assert f"top-1: {result['top_1_accuracy']:.4f}," in lines[-1]


def test_convert_weights_says_how_far_it_is_on_a_slow_file(fixtures_dir, tmp_path, capsys, monkeypatch):
    convert = load_script("scripts/convert_weights.py")
    monkeypatch.setattr(convert._Progress, "after_s", -1.0)  # as if every stage were slow
    assert convert.main([str(fixtures_dir / "timm_dla46_c.safetensors"), str(tmp_path / "o.ckpt"),
                         "--arch", "dla46_c"]) == 0
    out, err = capsys.readouterr()
    progress = [line for line in out.splitlines() if line.startswith("convert: ")]
    assert len(progress) == 2 and "read " in progress[0] and "matched " in progress[1] and not err.strip(), out
