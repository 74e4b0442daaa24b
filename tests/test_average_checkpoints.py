"""scripts/average_checkpoints.py: the mean of checkpoints tensor by tensor (against numpy), the optimizer
state left out, a run's top-k by its index, one-line refusals, and the average loading in eval.py."""
import json

import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path first)
import mindspore as ms

from common import create_model
from common.checkpoint import load_weights
from conftest import eval_result, load_script, run_script


def _script():
    return load_script("scripts/average_checkpoints.py").main


def _save(path, model="dla46_c", classes=10, seed=0, **extra):
    """A training-like checkpoint: random weights, an optimizer slot and counters."""
    net = create_model(model, num_classes=classes)
    rng = np.random.default_rng(seed)
    for p in net.get_parameters():
        p.set_data(ms.Tensor(rng.normal(size=p.shape).astype(np.float32)))
    ms.save_checkpoint(net, str(path), append_dict={"epoch_num": seed, "step_num": 7, **extra})
    return {k: v.asnumpy() for k, v in ms.load_checkpoint(str(path)).items()}


def _one_line(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and all(n in err[0] for n in needles), err
    return err[0]


def test_average_is_the_mean_without_training_state(tmp_path, capsys):
    a, b = _save(tmp_path / "a.ckpt", seed=1), _save(tmp_path / "b.ckpt", seed=2)
    out = tmp_path / "sub" / "avg.ckpt"
    assert _script()([str(tmp_path / "a.ckpt"), str(tmp_path / "b.ckpt"), "--out", str(out)]) == 0
    avg = {k: v.asnumpy() for k, v in ms.load_checkpoint(str(out)).items()}
    weights = [k for k in a if k not in ("epoch_num", "step_num")]
    assert sorted(avg) == sorted(weights)  # counters left out
    for name in weights:
        want = ((a[name].astype(np.float64) + b[name]) / 2).astype(np.float32)
        np.testing.assert_allclose(avg[name], want, rtol=1e-7, atol=0, err_msg=name)
    # loads as --pretrained does (another head re-initialised) and as weights of the same model
    load_weights(create_model("dla46_c", num_classes=10), str(out))
    assert load_weights(create_model("dla46_c", num_classes=3), str(out), allow_new_head=True)


@pytest.mark.parametrize("other, needles", [
    (dict(model="peleenet"), ["different models", "nothing written"]),
    (dict(model="dla46x_c"), ["differ in shape", "nothing written"]),
    (dict(classes=5), ["differ in shape", "(5,", "nothing written"]),
])
def test_refuses_other_models_in_one_line(tmp_path, capsys, other, needles):
    _save(tmp_path / "a.ckpt")
    _save(tmp_path / "b.ckpt", **other)
    out = tmp_path / "avg.ckpt"
    assert _script()([str(tmp_path / "a.ckpt"), str(tmp_path / "b.ckpt"), "--out", str(out)]) == 2
    _one_line(capsys, *needles)
    assert not out.exists()


def test_run_dir_top_k_takes_the_best_by_the_index(tmp_path, capsys):
    ckpt = tmp_path / "run" / "ckpt"
    ckpt.mkdir(parents=True)
    states = {e: _save(ckpt / f"dla46_c-{e}_5.ckpt", seed=e) for e in (1, 2, 3)}
    entries = [{"file": f"dla46_c-{e}_5.ckpt", "epoch": e, "step_in_epoch": 0, "top1": t}
               for e, t in ((1, 0.5), (2, 0.9), (3, 0.7))]
    (ckpt / "checkpoints_index.json").write_text(json.dumps({"metric": "top_1_accuracy", "checkpoints": entries}))
    out = tmp_path / "avg.ckpt"
    assert _script()(["--run_dir", str(tmp_path / "run"), "--top_k", "2", "--out", str(out)]) == 0
    avg = ms.load_checkpoint(str(out))
    name = "base_layer.0.weight" if "base_layer.0.weight" in avg else next(iter(avg))
    want = (states[2][name].astype(np.float64) + states[3][name]) / 2  # epochs 2 and 3 are the best
    np.testing.assert_allclose(avg[name].asnumpy(), want.astype(np.float32), rtol=1e-7)
    assert _script()(["--run_dir", str(tmp_path / "run"), "--top_k", "4", "--out", str(out)]) == 2
    _one_line(capsys, "ranks 3 checkpoint(s), fewer than --top_k 4")
    assert _script()(["--run_dir", str(tmp_path), "--out", str(out)]) == 2
    _one_line(capsys, "no checkpoints_index.json")


def test_average_evaluates_in_eval_py(tmp_path, demo_data):
    _save(tmp_path / "a.ckpt", seed=1)
    _save(tmp_path / "b.ckpt", seed=2)
    out = tmp_path / "avg.ckpt"
    assert _script()([str(tmp_path / "a.ckpt"), str(tmp_path / "b.ckpt"), "--out", str(out)]) == 0
    val = tmp_path / "val.txt"
    val.write_text("\n".join((demo_data / "val_list.txt").read_text().splitlines()[:16]) + "\n")
    proc = run_script("dla/eval.py", "--config_path", "config/dla_demo_config.yaml", "--data_path", demo_data,
                      "--cls_label_path_val", val, "--image_size", "32", "--ckpt_file", out, env={"GLOG_v": "3"})
    metrics, path = eval_result(proc.stdout)
    assert path == str(out) and 0.0 <= metrics["top_1_accuracy"] <= 1.0
