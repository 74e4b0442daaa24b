"""Hooks follow the config's model, not the folder of the script that ran: any family's entry file
given any shipped config resolves that model's family hooks; the entry files are one file; the
family records' default configs exist."""
import filecmp
import importlib
import re

import pytest

from common import cli, engine
from common.family import families, family_of, hooks_for
from conftest import ROOT, run_script

TASKS = ("train", "eval", "export", "predict")
FAMILY_NAMES = ("dla", "peleenet", "multigrain")
SHIPPED = sorted(p.name for p in (ROOT / "config").glob("*.yaml"))


def _resolved(monkeypatch, family, argv):
    """(cfg, hooks) that ``<family>/eval.py argv`` would run with (the task itself not run)."""
    seen = []
    monkeypatch.setitem(cli._TASKS, "eval", lambda argv, config, hooks: engine.run_main(
        lambda cfg, hooks: seen.append((cfg, hooks)), argv, config, hooks))
    importlib.import_module(f"{family}.eval").main(argv)
    return seen[0]


@pytest.mark.parametrize("config", SHIPPED)
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_any_entry_file_resolves_the_hooks_of_the_configs_model(family, config, monkeypatch):
    argv = ["--config_path", str(ROOT / "config" / config)]
    if "Thor" in config:
        argv += ["--device_target", "GPU"]  # THOR's configs are refused on CPU: only the checks run here
    cfg, hooks = _resolved(monkeypatch, family, argv)
    assert hooks == hooks_for(cfg.model)
    assert (hooks.check_config is not None) == (family_of(cfg.model).name == "multigrain")


def test_the_default_config_is_the_entry_folders_family(monkeypatch):
    for family in FAMILY_NAMES:
        cfg, _ = _resolved(monkeypatch, family, [])
        assert family_of(cfg.model).name == family


def test_another_familys_key_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module("dla.train").main(["--config_path", str(ROOT / "config" / "dla_demo_config.yaml"),
                                                    "--retrieval", "True"])
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: config error: unknown option '--retrieval'")


def test_every_family_has_the_same_four_entry_files():
    reference = ROOT / "dla" / "train.py"
    for family in families():
        for task in TASKS:
            assert filecmp.cmp(reference, ROOT / family.name / f"{task}.py", shallow=False), f"{family.name}/{task}.py"


def test_every_records_default_config_exists():
    for family in families():  # the entry files and the launchers (scripts/default_config.py) read it
        assert (ROOT / "config" / family.default_config).is_file()


@pytest.mark.slow
def test_dla_eval_with_the_multigrain_config_runs_multigrain_with_its_options(demo_data, tmp_path):
    """The issue's case: dla/eval.py given MultiGrain's config used to drop --retrieval/--eval_gem_p."""
    import mindspore as ms
    from common import create_model
    ckpt = tmp_path / "untrained.ckpt"
    ms.save_checkpoint(create_model("multigrain_resnet50", num_classes=10), str(ckpt))
    val, train = tmp_path / "val.txt", tmp_path / "train.txt"
    val.write_text("\n".join((demo_data / "val_list.txt").read_text().splitlines()[:30]) + "\n")
    train.write_text("\n".join((demo_data / "train_list.txt").read_text().splitlines()[:30]) + "\n")
    proc = run_script("dla/eval.py", "--config_path", "config/multigrain_demo_config.yaml", "--retrieval", "True",
                      "--eval_gem_p", 4, "--data_path", demo_data, "--cls_label_path_val", val, "--query_list", val,
                      "--gallery_list", train, "--ckpt_file", ckpt, "--batch_size", 30)
    assert "GeM p for evaluation: 4" in proc.stdout
    assert re.search(r"^result: \{'top_1_accuracy'", proc.stdout, re.M)
    assert re.search(r"^retrieval: \{'mAP'.*queries= 30 gallery= 30", proc.stdout, re.M)
