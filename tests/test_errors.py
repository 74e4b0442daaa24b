"""Every bad input is one clear line (exit 2, no traceback), a diverged run exits 3, and nothing a
user made is lost: one test per class of fault, the end-to-end ones through the real entry points.

Tiny runs: dla46_c, 32 px, 16 training / 8 validation digits, batch 8, one epoch."""
import logging
import os
import textwrap

import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path first)
import mindspore as ms

from common import create_model
from common.config import parse_args
from common.errors import ConfigError, Diverged, UserError, WeightsError
from conftest import ROOT, run_script


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, demo_data):
    """A config file for one-epoch runs on 16 training / 8 validation images (2 steps)."""
    folder = tmp_path_factory.mktemp("tiny")
    for split, count in (("train", 16), ("val", 8)):
        lines = (demo_data / f"{split}_list.txt").read_text().splitlines()[:count]
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")
    config = folder / "tiny.yaml"
    config.write_text(textwrap.dedent(f"""\
        model: dla46_c
        num_classes: 10
        device_target: CPU
        mode: PYNATIVE
        image_size: 32
        crop_pct: 1.0
        batch_size: 8
        num_parallel_workers: 1
        epoch_size: 1
        log_interval: 5
        data_path: {demo_data}
        cls_label_path_train: {folder / 'train.txt'}
        cls_label_path_val: {folder / 'val.txt'}
        """))
    return config


@pytest.fixture(scope="module")
def ckpt10(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "dla46_c_10.ckpt"
    ms.save_checkpoint(create_model("dla46_c", num_classes=10), str(path))
    return path


def refused(proc, *needles, code=2):
    """The run stopped with exit ``code``, no traceback, and a last line naming all ``needles``."""
    assert proc.returncode == code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = [line for line in proc.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("error: "), last
    for needle in needles:
        assert str(needle) in last, (needle, last)
    return last


def files_of(folder):
    """{relative path: bytes} of every file under ``folder``."""
    return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), "rb").read()
            for d, _, names in os.walk(folder) for f in names}


def with_full_disk(target, script, *argv):
    """``python script argv`` with ``mindspore.<target>`` replaced by a writer that fills the disk
    half-way through its file (OSError ENOSPC), as a full disk does."""
    code = textwrap.dedent(f"""\
        import errno, os, runpy, sys
        sys.path.insert(0, {str(ROOT)!r})
        import common
        import mindspore as ms

        def full_disk(*args, **kwargs):
            path = kwargs.get("file_name") or (args[1] if len(args) > 1 else kwargs["ckpt_file_name"])
            path = path if os.path.splitext(path)[1] else path + ".mindir"
            with open(path, "wb") as f:
                f.write(b"\\0" * 100)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        ms.{target} = full_disk
        sys.argv = [{script!r}, *{[str(a) for a in argv]!r}]
        runpy.run_path({script!r}, run_name="__main__")
        """)
    return run_script("-c", code, check=False)


# --------------------------------------------------------------------------- data that was lost
def test_training_again_into_a_used_output_dir_changes_nothing(tiny, tmp_path):
    """A second run without --resume is refused with every earlier file byte-for-byte intact; a
    failing --resume run leaves config.yaml alone; a resumed run prunes only its own checkpoints;
    a stale temp file of a killed save is removed; the run prints no MindSpore noise we cause."""
    out = tmp_path / "run"
    stale = out / "ckpt" / ".dla46_c-9_9.tmp.ckpt"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a checkpoint")
    os.utime(stale, (1e9, 1e9))
    first = run_script("dla/train.py", "--config_path", tiny, "--output_dir", out, "--mode", "GRAPH")
    assert not stale.exists()
    assert "side effect nodes" not in first.stderr and "is deprecated" not in first.stderr, first.stderr[-2000:]
    earlier = files_of(out)
    assert {"config.yaml", "ckpt/best.ckpt", "ckpt/dla46_c-1_2.ckpt"} <= set(earlier)

    again = run_script("dla/train.py", "--config_path", tiny, "--output_dir", out, "--lr", "0.01", check=False)
    refused(again, out, "--resume", f"{out}/ckpt/dla46_c-1_2.ckpt", "--output_dir")
    assert files_of(out) == earlier

    periodic = out / "ckpt" / "dla46_c-1_2.ckpt"
    elsewhere = tmp_path / "elsewhere.ckpt"  # resuming another run's checkpoint into this folder
    elsewhere.write_bytes(periodic.read_bytes())
    refused(run_script("dla/train.py", "--config_path", tiny, "--output_dir", out, "--resume", elsewhere,
                       "--epoch_size", "2", check=False), out, "--output_dir")
    broken = run_script("dla/train.py", "--config_path", tiny, "--output_dir", out, "--resume", periodic,
                        "--epoch_size", "2", "--cls_label_path_train", tmp_path / "missing.txt", check=False)
    refused(broken, tmp_path / "missing.txt")
    assert files_of(out) == earlier

    run_script("dla/train.py", "--config_path", tiny, "--output_dir", out, "--resume", periodic,
               "--epoch_size", "2", "--keep_checkpoint_max", "1", "--eval_during_train", "False")
    now = files_of(out)
    assert now["ckpt/dla46_c-1_2.ckpt"] == earlier["ckpt/dla46_c-1_2.ckpt"]  # the earlier run's: not pruned
    assert "ckpt/dla46_c-2_2.ckpt" in now


def test_a_failing_first_run_writes_nothing(tiny, tmp_path):
    out = tmp_path / "new"
    proc = run_script("dla/train.py", "--config_path", tiny, "--output_dir", out,
                      "--pretrained", tmp_path / "typo.ckpt", check=False)
    refused(proc, tmp_path / "typo.ckpt")
    assert not out.exists()


def test_export_onto_a_full_disk_keeps_the_earlier_file(tiny, ckpt10, tmp_path):
    target = tmp_path / "m"
    argv = ["--config_path", tiny, "--ckpt_file", ckpt10, "--file_name", target]
    run_script("dla/export.py", *argv)
    good = (tmp_path / "m.mindir").read_bytes()
    proc = with_full_disk("export", "dla/export.py", *argv)
    refused(proc, tmp_path / "m.mindir", "No space left on device")
    assert (tmp_path / "m.mindir").read_bytes() == good
    assert sorted(os.listdir(tmp_path)) == ["m.mindir"]  # no temporary file left behind


def test_a_disk_that_fills_during_training_is_one_line(tiny, tmp_path):
    out = tmp_path / "run"
    proc = with_full_disk("save_checkpoint", "dla/train.py", "--config_path", tiny, "--output_dir", out,
                          "--eval_during_train", "False")
    refused(proc, out / "ckpt" / "dla46_c-1_2.ckpt", "No space left on device")
    assert os.listdir(out / "ckpt") == []


# --------------------------------------------------------------------------- config values
PARSE_CASES = [
    (["--batch_size", "0"], ["'batch_size'", "[1, inf)", "0"]),
    (["--epoch_size", "-1"], ["'epoch_size'", "[1, inf)"]),
    (["--num_classes", "0"], ["'num_classes'", "[1, inf)"]),
    (["--image_size", "0"], ["'image_size'"]),
    (["--lr", "-0.1"], ["'lr'", "[0, inf)", "-0.1"]),
    (["--lr", "nan"], ["'lr'", "nan"]),
    (["--mean", "0.5,0.5"], ["'mean'", "3 values"]),
    (["--std", "0.2,0.2,0.2,0.2"], ["'std'", "3 values"]),
    (["--std", "0,1,1"], ["'std'", "(0, inf)"]),
    (["--scale", "1.0,0.08"], ["'scale'", "ascending"]),
    (["--ratio", "1.33,0.75"], ["'ratio'", "ascending"]),
    (["--hflip", "1.5"], ["'hflip'", "[0, 1]"]),
    (["--lr_scheduler", "triangle"], ["lr_scheduler", "triangle", "cosine"]),
    (["--device_target", "TPU"], ["device_target", "TPU", "CPU, GPU, Ascend"]),
    (["--backend", "foo"], ["backend", "foo", "mindspore, onnxruntime"]),
    (["--model", "multigrain", "--mix_lambda", "1.5"], ["'mix_lambda'", "[0, 1]", "1.5"]),
    (["--model", "multigrain", "--gem_p", "0"], ["'gem_p'", "(0, inf)"]),
    (["--model", "multigrain", "--export_head", "neck"], ["export_head", "neck", "classifier, embedding"]),
]


@pytest.mark.parametrize("argv,needles", PARSE_CASES, ids=[" ".join(c[0]) for c in PARSE_CASES])
def test_a_value_outside_its_range_is_refused_at_parse_time(argv, needles):
    with pytest.raises(ConfigError) as err:
        parse_args(argv)
    message = str(err.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_more_workers_than_cores_are_lowered_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        cfg = parse_args(["--num_parallel_workers", "10000"])
    assert cfg.num_parallel_workers == os.cpu_count()
    assert "num_parallel_workers 10000" in caplog.text


@pytest.mark.parametrize("content", ["model: [dla46_c\n  lr: {", "\x00\x01 not text \xff"])
def test_a_config_file_that_is_not_yaml(tmp_path, content):
    path = tmp_path / "c.yaml"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(ConfigError, match=f"{path} is not a yaml file"):
        parse_args(["--config_path", str(path)])


def test_a_bad_value_through_the_entry_point_is_one_line(tiny, tmp_path):
    proc = run_script("dla/train.py", "--config_path", tiny, "--output_dir", tmp_path / "o", "--lr", "-0.1",
                      check=False)
    refused(proc, "'lr'", "-0.1", "[0, inf)")
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- data
def _cfg(tmp_path, **keys):
    cfg = parse_args(["--data_path", str(tmp_path), "--num_classes", "3"])
    cfg.update(keys)
    return cfg


def _folders(root, classes):
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            (root / name / f"{i}.png").write_bytes(b"")


@pytest.mark.parametrize("label", ["57", "-1"])
def test_a_list_label_outside_the_classes_stops_the_run(tmp_path, label):
    from common.data import dataset_samples
    from common.errors import DatasetError
    (tmp_path / "train.txt").write_text(f"a.png 0\nb.png {label}\n")
    with pytest.raises(DatasetError, match=f"train.txt:2: label {label} is outside \\[0, 3\\)"):
        dataset_samples(_cfg(tmp_path, cls_label_path_train=str(tmp_path / "train.txt")), "train")


def test_more_class_folders_than_num_classes(tmp_path):
    from common.data import dataset_samples
    from common.errors import DatasetError
    _folders(tmp_path / "train", {"a": 1, "b": 1, "c": 1, "d": 1})
    with pytest.raises(DatasetError, match="has 4 class folders but num_classes is 3; set --num_classes 4"):
        dataset_samples(_cfg(tmp_path), "train")


def test_validation_folders_that_are_not_the_training_classes(tmp_path, caplog):
    from common.data import dataset_samples
    from common.errors import DatasetError
    _folders(tmp_path / "train", {"cat": 2, "dog": 2, "eel": 0})
    _folders(tmp_path / "val", {"cat": 1, "cow": 1})
    with caplog.at_level(logging.WARNING):
        train = dataset_samples(_cfg(tmp_path), "train")
        val = dataset_samples(_cfg(tmp_path), "val")
    assert len(train) == 4 and val == [(str(tmp_path / "val" / "cat" / "0.png"), 0)]
    assert "class folder(s) without images: eel" in caplog.text
    assert "not training classes are ignored: cow" in caplog.text
    assert "no folder for training class(es) dog, eel" in caplog.text
    _folders(tmp_path / "val2", {"Cat": 1})
    with pytest.raises(DatasetError, match="none of the class folders of .*val2 is a training class"):
        dataset_samples(_cfg(tmp_path, val_dir="val2"), "val")


def test_a_bad_label_through_the_entry_point_is_one_line(tiny, tmp_path):
    bad = tmp_path / "train.txt"
    bad.write_text("train/0/0_0000.png 57\n")
    proc = run_script("dla/train.py", "--config_path", tiny, "--output_dir", tmp_path / "o",
                      "--cls_label_path_train", bad, check=False)
    refused(proc, f"{bad}:1", "57")


# --------------------------------------------------------------------------- weights and files
def _weights(ckpt10, tmp_path, kind):
    from safetensors.numpy import save_file
    data = ckpt10.read_bytes()
    safetensors = tmp_path / "w.safetensors"
    save_file({"fc.weight": np.zeros((10, 4), np.float32)}, str(safetensors))
    cut = {"empty.ckpt": b"", "truncated.ckpt": data[:len(data) // 2],
           "tiny.safetensors": safetensors.read_bytes()[:12],
           "truncated.safetensors": safetensors.read_bytes()[:-40]}[kind]
    path = tmp_path / kind
    path.write_bytes(cut)
    return path


@pytest.mark.parametrize("kind,needle", [("empty.ckpt", "is empty (0 bytes)"),
                                         ("truncated.ckpt", "is not a readable checkpoint"),
                                         ("tiny.safetensors", "is not a readable safetensors file"),
                                         ("truncated.safetensors", "is not a readable safetensors file")])
def test_an_unreadable_weights_file_is_one_line(ckpt10, tmp_path, kind, needle):
    from common.checkpoint import load_weights
    path = _weights(ckpt10, tmp_path, kind)
    with pytest.raises(WeightsError) as err:
        load_weights(create_model("dla46_c", num_classes=10), str(path))
    assert str(path) in str(err.value) and needle in str(err.value) and "\n" not in str(err.value)


def test_an_empty_checkpoint_through_the_entry_point(tiny, ckpt10, tmp_path):
    path = _weights(ckpt10, tmp_path, "empty.ckpt")
    refused(run_script("dla/eval.py", "--config_path", tiny, "--ckpt_file", path, check=False), path, "empty")


def test_resume_from_another_models_checkpoint(tiny, tmp_path):
    other = tmp_path / "dla34.ckpt"
    ms.save_checkpoint(create_model("dla34", num_classes=10), str(other), append_dict={"epoch_num": 1})
    proc = run_script("dla/train.py", "--config_path", tiny, "--output_dir", tmp_path / "o", "--resume", other,
                      "--epoch_size", "2", check=False)
    refused(proc, other, "not a training checkpoint of this model")


def test_an_output_folder_that_is_a_file(tiny, tmp_path):
    from common.outputs import check_output_dir
    afile = tmp_path / "afile"
    afile.write_text("mine")
    proc = run_script("dla/train.py", "--config_path", tiny, "--output_dir", afile, check=False)
    refused(proc, afile, "is a file")
    with pytest.raises(UserError, match="cannot create output folder .*afile is a file"):
        check_output_dir(str(afile / "sub"))
    assert afile.read_text() == "mine"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc (a folder nobody can create in)")
def test_an_output_folder_that_cannot_be_created():
    from common.outputs import make_output_dir
    with pytest.raises(UserError, match="cannot create output folder /proc/zoo_out/ckpt"):
        make_output_dir("/proc/zoo_out/ckpt")


def test_predict_with_an_onnx_file_of_another_size_or_truncated(tiny, tmp_path):
    from common.predict import Predictor
    net = create_model("dla46_c", num_classes=10)
    ms.export(net, ms.Tensor(np.zeros((1, 3, 32, 32), np.float32)), file_name=str(tmp_path / "m"),
              file_format="ONNX")
    image = tmp_path / "x.png"
    from PIL import Image
    Image.new("RGB", (40, 40)).save(image)
    proc = run_script("dla/predict.py", "--config_path", tiny, "--ckpt_file", tmp_path / "m.onnx",
                      "--predict_path", image, "--image_size", "64", check=False)
    refused(proc, tmp_path / "m.onnx", "3x32x32", "--image_size 32")
    cut = tmp_path / "cut.onnx"
    cut.write_bytes((tmp_path / "m.onnx").read_bytes()[:5000])
    with pytest.raises(WeightsError, match="cut.onnx .* is not a loadable ONNX model"):
        Predictor(parse_args(["--ckpt_file", str(cut)]))


# --------------------------------------------------------------------------- exit codes
def test_run_main_exit_codes_and_bugs_keep_their_traceback(capsys):
    from common.engine import run_main

    def raising(error):
        def task(cfg, hooks):
            raise error
        return task

    with pytest.raises(SystemExit) as done:
        run_main(raising(WeightsError("w.ckpt is odd")), [], "", None)
    assert done.value.code == 2 and capsys.readouterr().err == "error: w.ckpt is odd\n"
    wrapped = RuntimeError("MindSpore's callback wrapper")
    wrapped.__cause__ = Diverged("loss is nan at epoch 1 step 2")
    with pytest.raises(SystemExit) as done:
        run_main(raising(wrapped), [], "", None)
    assert done.value.code == 3 and "loss is nan" in capsys.readouterr().err
    with pytest.raises(KeyError):  # a bug in our code: the traceback stays
        run_main(raising(KeyError("bug")), [], "", None)
    with pytest.raises(RuntimeError, match="unrelated"):
        run_main(raising(RuntimeError("unrelated")), [], "", None)
