"""benchmark.py: the statistics and ratios against hand-computed values, the synthetic image folder,
and a tiny end-to-end run (one small model, batch 2, 32 px) whose table and JSON carry every field.
No test asserts a speed."""
import json

import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path first, as benchmark.py)
from conftest import run_script
from tools.benchmark.cli import create_parser, main, measure
from tools.benchmark.pipeline import summarize_pipeline, write_synthetic_images
from tools.benchmark.report import add_pipeline_ratios, add_ratios, markdown
from tools.benchmark.timing import alternate, summarize, summarize_pairs, time_repeats


def test_summarize_median_min_max_from_step_times():
    # batch 4; steps of 0.5 s, 1 s, 0.25 s -> 8, 4, 16 img/s; median step 0.5 s -> 8 img/s
    result = summarize(([0.5, 1.0, 0.25], [0.9, 2.0, 0.5]), 4)
    assert result["median"] == 8.0 and result["min"] == 4.0 and result["max"] == 16.0
    assert result["runs"] == [4.0, 8.0, 16.0]
    assert result["cpu_s_per_step"] == 0.9


def test_time_repeats_counts_warmup_and_steps():
    calls = []
    walls, cpus = time_repeats(lambda: calls.append(1), repeat=3, warmup=2, steps=4)
    assert len(calls) == (2 + 3) * 4
    assert len(walls) == len(cpus) == 3 and all(t >= 0 for t in walls + cpus)


def _rate(median, cpu=1.0):
    return {"median": median, "min": median, "max": median, "runs": [median], "cpu_s_per_step": cpu}


def _report():
    entry = {"params_m": 15.74, "train": _rate(3.0, 8.0), "infer": _rate(10.0, 2.0), "rss_train_mb": 2000.0,
             "rss_infer_mb": 900.0,
             "served": {"onnx": {"infer": _rate(24.0, 1.25)}, "mindir": {"infer": _rate(9.0, 2.5)}},
             "torch": {"train": _rate(4.0, 6.0), "infer": _rate(16.0, 2.5)}}
    add_ratios(entry)
    report = {"environment": {"settings": {"batch": 16, "size": 224, "device_target": "CPU", "threads": 2},
                              "mindspore": "2.10.0", "torch": "2.13.0", "timm": "1.0.31"},
              "models": {"dla34": entry},
              "pipeline": {"images_per_s": _rate(12.0), "workers": [1, 2]}}
    add_pipeline_ratios(report)
    return report


def test_ratios_against_torch_and_training():
    report = _report()
    ratios = report["models"]["dla34"]["ratios_vs_torch"]
    assert ratios["train"] == 0.75          # 3 / 4
    assert ratios["infer"] == 0.625         # 10 / 16
    assert ratios["onnx_infer"] == 1.5      # 24 / 16
    assert ratios["best_served_infer"] == 1.5
    assert report["pipeline"]["ratio_to_train"] == {"dla34": 4.0}  # 12 / 3
    # by CPU seconds per step, torch's / ours: 6 / 8, 2.5 / 2, 2.5 / min(2, 1.25, 2.5)
    assert report["models"]["dla34"]["cpu_ratios_vs_torch"] == {"train": 0.75, "infer": 1.25, "best_served_infer": 2.0}


def test_pipeline_ratios_to_modelzoo_and_to_one_worker_are_medians_over_rounds():
    def round_(zoo1, zoo2, ours1, ours2, det, mix):
        return {"modelzoo/1": {"images_per_s": _rate(zoo1)}, "modelzoo/2": {"images_per_s": _rate(zoo2)},
                "ours/1": {"images_per_s": _rate(ours1)}, "ours/2": {"images_per_s": _rate(ours2)},
                "deterministic/1": {"images_per_s": _rate(det)}, "mix/2": {"images_per_s": _rate(mix)}}
    summary = summarize_pipeline([round_(100, 200, 100, 180, 50, 90), round_(100, 100, 80, 160, 40, 80),
                                            round_(100, 200, 100, 200, 25, 200)], [1, 2])
    rows = summary["rows"]
    assert rows["ours/2"]["vs_reference"] == {"median": 1.0, "rounds": [0.9, 1.6, 1.0]}   # ours / ModelZoo at 2
    assert rows["ours/2"]["vs_own_lowest"] == {"median": 2.0, "rounds": [1.8, 2.0, 2.0]}  # ours at 2 / ours at 1
    assert rows["modelzoo/2"]["vs_own_lowest"]["median"] == 2.0
    assert rows["deterministic/1"]["vs_reference"]["rounds"] == [0.5, 0.5, 0.25]
    assert rows["mix/2"]["vs_reference"]["median"] == 0.5
    assert summary["images_per_s"]["median"] == 180  # the first round's ours at the most workers


def test_paired_rounds_give_the_median_ratio_and_its_range():
    """Round 1 is the entry; each later round is MindSpore and the twin measured back to back."""
    entry = {"train": _rate(3.0), "infer": _rate(10.0), "torch": {"train": _rate(4.0), "infer": _rate(16.0)},
             "rounds": [{"train": _rate(4.5), "infer": _rate(9.0), "torch": {"train": _rate(5.0), "infer": _rate(10.0)}},
                        {"train": _rate(2.0), "infer": _rate(8.0), "torch": {"train": _rate(2.5), "infer": _rate(10.0)}}]}
    add_ratios(entry)
    ratios = entry["ratios_vs_torch"]
    assert ratios["train_rounds"] == [0.75, 0.9, 0.8] and ratios["train"] == 0.8
    assert ratios["infer_rounds"] == [0.625, 0.9, 0.8] and ratios["infer"] == 0.8
    report = {"environment": {"settings": {"batch": 16, "size": 224, "device_target": "CPU", "threads": 2,
                                           "rounds": 3}},
              "models": {"dla34": entry}}
    table = markdown(report)
    row = next(line for line in table.splitlines() if line.startswith("| dla34"))
    assert "| 0.80x (0.75-0.90) | 0.80x (0.62-0.90) |" in row
    assert "median (min-max) of 3 rounds" in table


class FakeClock:
    """Each step advances the clock by its own fixed duration: alternate() needs no real timing."""

    def __init__(self):
        self.now, self.calls, self.slept = 0.0, [], 0.0

    def step(self, name, seconds):
        def run():
            self.calls.append(name)
            self.now += seconds
        return run

    def sleep(self, seconds):
        self.slept += seconds


def test_alternate_swaps_the_order_every_pair_and_times_each_step():
    clock = FakeClock()
    ours, theirs = alternate(clock.step("ours", 2.0), clock.step("twin", 1.5), pairs=3, warmup=1,
                                       pause=0.2, clock=lambda: clock.now, sleep=clock.sleep)
    assert clock.calls == ["ours", "twin"] + ["ours", "twin", "twin", "ours", "ours", "twin"]
    assert ours == [2.0] * 3 and theirs == [1.5] * 3
    assert clock.slept == pytest.approx(6 * 0.2)  # a pause before every timed step, none in warm-up


def test_paired_ratios_are_the_twins_time_over_ours_per_pair():
    # pairs (ours, twin) seconds: (1, 0.8), (2, 1.0), (1, 1.2) -> ratios 0.8, 0.5, 1.2; batch 16
    result = summarize_pairs([1.0, 2.0, 1.0], [0.8, 1.0, 1.2], 16)
    assert result["ratios"] == [0.5, 0.8, 1.2] and result["ratio"] == 0.8
    assert (result["min"], result["max"]) == (0.5, 1.2)
    assert result["ours_img_s"] == 16.0 and result["twin_img_s"] == 16.0  # median step 1 s each
    report = _report()
    report["models"]["dla34"]["paired"] = {"pairs": 3, "pause_s": 0.2, "train": result,
                                           "infer": summarize_pairs([0.5], [0.6], 16)}
    table = markdown(report)
    assert "steps alternating (0.2 s apart" in table
    row = [line for line in table.splitlines() if line.startswith("| dla34")][-1]
    assert row == "| dla34 | 3 | 0.80x (0.50-1.20) | 1.20x | 16.0 | 16.0 |"


def test_markdown_table_has_every_column():
    table = markdown(_report())
    header = next(line for line in table.splitlines() if line.startswith("| model"))
    for column in ("train img/s", "infer img/s", "MINDIR img/s", "ONNX img/s", "peak RSS", "torch train",
                   "torch infer", "train ratio", "infer ratio", "best served ratio"):
        assert column in header
    row = next(line for line in table.splitlines() if line.startswith("| dla34"))
    assert "0.75x" in row and "1.50x" in row and "2000.0 / 900.0" in row
    assert "PyTorch 2.13.0" in table and "dla34 4.00x" in table
    cpu_row = [line for line in table.splitlines() if line.startswith("| dla34")][1]
    assert cpu_row.split(" | ")[1:3] == ["8.000", "2.000"] and cpu_row.endswith("| 0.75x | 1.25x | 2.00x |")


def test_paired_without_compare_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--models", "dla34", "--paired", "5"])
    assert "--paired times MindSpore against the PyTorch twin: it needs --compare" in capsys.readouterr().err


def test_bad_export_format_is_refused():
    with pytest.raises(SystemExit):
        measure(create_parser().parse_args(["--models", "", "--export", "air"]))


def test_serving_curve_table_has_a_row_per_format_and_folding_and_a_column_per_batch():
    report = _report()
    report["environment"]["settings"]["serve_batches"] = "1,8,32"
    report["models"]["dla34"]["serving_curve"] = {
        "onnx": {"unfolded": {"1": {"infer": _rate(20.0)}, "8": {"infer": _rate(40.0)}, "32": {"error": "oom"}},
                 "folded": {"1": {"infer": _rate(30.0)}, "8": {"infer": _rate(60.0)}, "32": {"infer": _rate(70.0)}}},
        "mindir": {"folded": {"1": {"infer": _rate(5.0)}}}}
    lines = markdown(report).splitlines()
    start = lines.index("| model | served | BatchNorm | batch 1 img/s | batch 8 img/s | batch 32 img/s |")
    rows = [line.split(" | ")[1:] for line in lines[start + 2:start + 5]]
    assert [r[:2] for r in rows] == [["MINDIR", "folded"], ["ONNX Runtime", "unfolded"], ["ONNX Runtime", "folded"]]
    assert [r[2].split()[0] for r in rows] == ["5.00", "20.00", "30.00"]
    assert rows[1][3:] == ["40.00 (40.00-40.00)", "error |"] and rows[0][3:] == ["-", "- |"]


def test_serve_batches_needs_export(capsys):
    with pytest.raises(SystemExit):
        main(["--models", "dla34", "--serve_batches", "1,8,32"])
    assert "--serve_batches times exported files: it needs --export mindir,onnx" in capsys.readouterr().err


def test_synthetic_images_are_imagenet_sized_jpegs(tmp_path):
    from common.data import read_rgb
    write_synthetic_images(str(tmp_path), 6, num_classes=3)
    files = sorted(tmp_path.glob("train/*/*.jpg"))
    assert len(files) == 6 and len({f.parent.name for f in files}) == 3
    image = read_rgb(str(files[0]))
    assert image.shape == (375, 500, 3) and image.dtype == np.uint8 and image.std() > 10


@pytest.mark.slow
def test_tiny_end_to_end_run(tmp_path, repo_root):
    # a 'torch' that cannot be imported: --compare must skip with a message, not fail
    fake = tmp_path / "no_torch"
    fake.mkdir()
    (fake / "torch.py").write_text("raise ImportError('torch is not installed')\n")
    out = tmp_path / "bench.json"
    proc = run_script(repo_root / "benchmark.py", "--models", "dla46_c", "--batch", "2", "--size", "32",
                      "--repeat", "1", "--warmup", "1", "--threads", "2", "--export", "mindir,onnx",
                      "--pipeline", "synthetic", "--pipeline_images", "8", "--pipeline_rounds", "1", "--compare", "--json", out,
                      env={"PYTHONPATH": str(fake)})
    assert "--compare skipped" in proc.stdout
    report = json.loads(out.read_text())
    entry = report["models"]["dla46_c"]
    assert "error" not in entry, entry
    for task in ("train", "infer"):
        assert set(entry[task]) >= {"median", "min", "max", "runs", "cpu_s_per_step"}
        assert entry[task]["min"] <= entry[task]["median"] <= entry[task]["max"]
    assert entry["rss_train_mb"] > 0 and entry["rss_infer_mb"] > 0
    assert entry["params_m"] == pytest.approx(1.3014, abs=1e-3)  # dla46_c: 1,301,400 parameters (paper, timm)
    for fmt in ("mindir", "onnx"):
        served = entry["served"][fmt]
        assert "error" not in served, served
        assert served["infer"]["median"] > 0
        assert served["rel_diff"] < 1e-4  # the exported file computes what the network computes
    assert "torch" not in entry
    pipeline = report["pipeline"]
    assert pipeline["images"] == 8 and pipeline["images_per_s"]["median"] > 0
    assert pipeline["ratio_to_train"]["dla46_c"] > 0
    assert set(pipeline["rows"]) == {"ours/1", "ours/2", "modelzoo/1", "modelzoo/2", "deterministic/1", "mix/2", "reader/1"}
    for row in pipeline["rows"].values():
        assert "error" not in row, row
        assert row["images"] == 8 and row["images_per_s"]["cpu_s_per_image"] > 0
    assert pipeline["rows"]["ours/2"]["reference"] == "modelzoo/2" and pipeline["rows"]["ours/2"]["vs_reference"]
    assert report["environment"]["settings"]["threads"] == 2
    header = next(line for line in proc.stdout.splitlines() if line.startswith("| model"))
    assert "MINDIR img/s" in header and "ONNX img/s" in header
    assert any(line.startswith("| dla46_c |") for line in proc.stdout.splitlines())
    assert "| ours (`create_dataset`) | 2 |" in proc.stdout


def test_distill_table_puts_each_teachers_step_beside_the_student_alone():
    from tools.benchmark.distill import distill_table
    from tools.benchmark.report import fmt_rate
    report = _report()
    report["models"]["dla34"]["distill"] = {"dla102x2": _rate(1.5), "dla60": {"error": "boom"}}
    lines = distill_table(report, fmt_rate)
    assert lines[3] == "| student | train img/s alone | with dla102x2 (step time x) | with dla60 (step time x) |"
    # alone 3 img/s, with the teacher 1.5 img/s: each step takes 2x as long
    assert lines[5].startswith("| dla34 | 3.00") and "(x2.00)" in lines[5] and "error: boom" in lines[5]
    assert distill_table(_report(), fmt_rate) == []
