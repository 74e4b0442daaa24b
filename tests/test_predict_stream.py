"""predict at scale (issue 29) and its odd inputs (issue 25): the images go through the eval pipeline in
batches, so the peak memory of a run over 4N images is that of a run over N; results files (csv, jsonl,
json) hold the console's rows; an unreadable image, a FIFO among the images, a comma in a file name and
Paddle's option names (save_json_path, class_map_path) through the real entry points."""
import ast
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, run_script

N = 64           # images of the small run; the large run has 4N
BATCH = "16"
# Measured (2 cores, batches of 16, 224 px): peak RSS 681 MB for 64 images, 753 for 256, 760 for 512: the
# pipeline's look-ahead fills over the first few hundred images, then stays (2048 images through the
# pipeline alone: flat). Holding the images would add 3N x 602 KB = 115 MB of input alone, and predict
# before streaming took ~10 MB per image (its activations): 1.9 GB here.
RSS_NOISE_KB = 100 * 1024


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    import mindspore as ms
    from common import create_model
    path = tmp_path_factory.mktemp("ck") / "dla46_c_10.ckpt"
    ms.set_seed(5)
    ms.save_checkpoint(create_model("dla46_c", num_classes=10), str(path))
    return path


def args(demo_data, ckpt, *extra):
    return ["--config_path", "config/dla_demo_config.yaml", "--data_path", demo_data, "--image_size", "32",
            "--num_parallel_workers", "1", "--ckpt_file", ckpt, *extra]


def console_rows(stdout):
    return [ast.literal_eval(l) for l in stdout.splitlines() if l.startswith("{'")]


def peak_rss_kb(argv):
    """(peak RSS in KB of the child running ``argv``, its stdout): os.wait4 gives that one child's rusage."""
    proc = subprocess.Popen([sys.executable, *map(str, argv)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, out[-2000:]
    return usage.ru_maxrss, out


@pytest.mark.slow
def test_memory_does_not_grow_with_the_folder_and_the_results_file_equals_the_console(tmp_path, demo_data, ckpt):
    """N images (a list file, rows on the console) and 4N (a folder, rows in a .csv) at 224 px, batches of 16."""
    rng = np.random.RandomState(0)
    folder = tmp_path / "images" / "sub"  # recursion: the images sit one folder down
    folder.mkdir(parents=True)
    paths = []
    for i in range(4 * N):  # small, cheap files: the pipeline resizes them to 224 px
        paths.append(folder / f"{i:04d}.png")
        Image.fromarray(rng.randint(0, 256, (48, 40, 3), np.uint8)).save(paths[-1])
    (tmp_path / "first.txt").write_text("".join(f"{p}\n" for p in paths[:N]))
    common = ["dla/predict.py", *args(demo_data, ckpt, "--image_size", "224", "--batch_size", BATCH)]
    small_rss, small_out = peak_rss_kb([*common, "--predict_path", tmp_path / "first.txt"])
    large_rss, large_out = peak_rss_kb([*common, "--predict_path", tmp_path / "images",
                                        "--results_file", tmp_path / "out.csv"])
    assert large_rss - small_rss < RSS_NOISE_KB, (small_rss, large_rss)

    console = console_rows(small_out)
    assert [r["file_name"] for r in console] == list(map(str, paths[:N]))
    assert not console_rows(large_out)  # with a results file the rows go there, not to the console
    assert f"predict: {4 * N} images (0 unreadable)" in large_out
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["file_name"] for r in rows] == list(map(str, paths))  # stable sorted order
    for want, got in zip(console, rows):
        assert [int(got[f"class_id_{k}"]) for k in range(1, 6)] == want["class_ids"]
        assert [float(got[f"score_{k}"]) for k in range(1, 6)] == want["scores"]
        assert [got[f"label_name_{k}"] for k in range(1, 6)] == want["label_names"]


@pytest.mark.timeout(240)  # a blocking open() of the FIFO fails the test instead of hanging the suite
def test_odd_files_are_warning_rows_and_paddle_names_write_one_json_document(tmp_path, demo_data, ckpt):
    """A folder with a comma-named image, a FIFO and a file that is no image, through Paddle's option names."""
    folder = tmp_path / "in"
    folder.mkdir()
    source = sorted((demo_data / "val" / "3").glob("*.png"))
    comma = folder / "cat, sitting.png"
    comma.write_bytes(source[0].read_bytes())
    (folder / "dog.png").write_bytes(source[1].read_bytes())
    os.mkfifo(folder / "pipe.png")
    (folder / "junk.png").write_text("not an image")
    (tmp_path / "map.txt").write_text("".join(f"digit {i}\n" for i in range(10)))
    proc = run_script("dla/predict.py", *args(demo_data, ckpt, "--predict_path", folder,
                                              "--save_json_path", tmp_path / "res.json",
                                              "--class_map_path", tmp_path / "map.txt"), timeout=200)
    document = json.loads((tmp_path / "res.json").read_text())
    assert [r["file_name"] for r in document] == [str(comma), str(folder / "dog.png"), str(folder / "junk.png"),
                                                  str(folder / "pipe.png")]
    good, bad = [document[0], document[1]], {r["file_name"]: r["error"] for r in document[2:]}
    assert all(r["label_names"] == [f"digit {i}" for i in r["class_ids"]] for r in good)
    assert bad == {str(folder / "junk.png"): f"unreadable image {folder / 'junk.png'}: not an image file PIL "
                                             f"can identify",
                   str(folder / "pipe.png"): f"unreadable image {folder / 'pipe.png'}: not a regular file (a FIFO)"}
    assert f"skipping unreadable image {folder / 'pipe.png'}: not a regular file (a FIFO)" in proc.stderr


def test_a_whole_path_wins_over_comma_splitting(tmp_path):
    from common.errors import DatasetError
    from common.predict_inputs import image_paths
    (tmp_path / "cat, sitting.png").write_bytes(b"")
    (tmp_path / "cat").write_bytes(b"")
    (tmp_path / "dog.png").write_bytes(b"")
    assert image_paths(f"{tmp_path}/cat, sitting.png") == [f"{tmp_path}/cat, sitting.png"]
    assert image_paths(f"{tmp_path}/dog.png,{tmp_path}/dog.png") == [f"{tmp_path}/dog.png"] * 2
    with pytest.raises(DatasetError, match="no such image, folder or list file:  sitting.png"):
        image_paths(f"{tmp_path}/dog.png, sitting.png")  # no such whole path: split, and " sitting.png" is missing
    # a list file: relative entries from data_path, labels after the name ignored, names with spaces kept
    (tmp_path / "list.txt").write_text("dog.png 3\ncat, sitting.png\n")
    assert image_paths(str(tmp_path / "list.txt"), str(tmp_path)) == [f"{tmp_path}/dog.png",
                                                                      f"{tmp_path}/cat, sitting.png"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_results_files_hold_the_rows_in_each_format(tmp_path, suffix, monkeypatch, capsys):
    import common.predict_results
    from common.predict_results import ResultSink
    monkeypatch.setattr(common.predict_results, "PROGRESS_SECONDS", 0.0)  # a progress line after each batch
    rows = [{"class_ids": [3, 1], "scores": [0.75, 0.25], "file_name": "a, b.png", "label_names": ["c,3", "c\"1"]},
            {"file_name": "x.png", "error": "unreadable image x.png: empty file"},
            {"class_ids": [0, 2], "scores": [0.5, 0.5], "file_name": "y.png", "label_names": ["0", "2"]}]
    sink = ResultSink(str(tmp_path / f"out{suffix}"), 3, topk=2)
    sink.add(rows[:2])
    sink.add(rows[2:])
    sink.close()
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and printed[0].startswith("predict: 2/3 images, ") and printed[0].endswith(" images/s")
    assert printed[1].startswith("predict: 3 images (1 unreadable) in ") and printed[1].endswith(f"results in {sink.path}")
    text = (tmp_path / f"out{suffix}").read_text(encoding="utf-8")
    if suffix == ".json":
        assert json.loads(text) == rows
    elif suffix == ".jsonl":
        assert [json.loads(l) for l in text.splitlines()] == rows
    else:
        got = list(csv.reader(text.splitlines()))
        assert got[0] == ["file_name", "class_id_1", "score_1", "label_name_1", "class_id_2", "score_2",
                          "label_name_2", "error"]
        assert got[1:] == [["a, b.png", "3", "0.75", "c,3", "1", "0.25", 'c"1', ""],
                           ["x.png", "", "", "", "", "", "", "unreadable image x.png: empty file"],
                           ["y.png", "0", "0.5", "0", "2", "0.5", "2", ""]]


def one_error_line(proc):
    lines = [l for l in proc.stderr.splitlines() if l.strip() and not l.startswith("[WARNING]")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


def test_a_file_predict_cannot_use_is_one_line(tmp_path, demo_data, ckpt):
    proc = run_script("dla/predict.py", *args(demo_data, ckpt, "--predict_path", ckpt), check=False)
    assert one_error_line(proc) == (f"error: {ckpt} is a model file (.ckpt), not an image: pass it as "
                                    f"--ckpt_file and the images as --predict_path")
    proc = run_script("dla/predict.py", *args(demo_data, ckpt, "--predict_path", demo_data / "val" / "3",
                                              "--results_file", tmp_path / "out.txt"), check=False)
    assert "results_file" in one_error_line(proc) and "OUT.csv, OUT.jsonl or OUT.json" in proc.stderr


def test_eval_save_json_path_writes_the_result_dict(tmp_path, demo_data, ckpt):
    lines = (demo_data / "val_list.txt").read_text().splitlines()[:16]
    (tmp_path / "val16.txt").write_text("\n".join(lines) + "\n")
    proc = run_script("dla/eval.py", *args(demo_data, ckpt, "--save_json_path", tmp_path / "metrics.json",
                                           "--cls_label_path_val", tmp_path / "val16.txt"))
    printed = ast.literal_eval(next(l for l in proc.stdout.splitlines()
                                    if l.startswith("result: "))[len("result: "):].split(" ckpt= ")[0])
    assert json.loads((tmp_path / "metrics.json").read_text()) == printed
