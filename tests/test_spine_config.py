"""common.config: yaml + typed --key value overrides, one-line errors, Paddle aliases."""
import subprocess
import sys

import pytest

from common.config import parse_args
from common.errors import ConfigError


def write_yaml(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def test_cli_overrides_yaml_with_types(tmp_path):
    cfg_path = write_yaml(tmp_path, "model: dla60\nlr: 0.2\nlr_epochs: [3, 6]\nrun_distribute: False\n")
    cfg = parse_args(["--config_path", cfg_path, "--lr", "0.5", "--lr_epochs", "[10, 20]",
                      "--run_distribute", "True", "--batch_size", "7", "--mean", "0.5,0.5,0.5"])
    assert cfg.model == "dla60"
    assert cfg.lr == 0.5 and isinstance(cfg.lr, float)
    assert cfg.lr_epochs == [10, 20]
    assert cfg.run_distribute is True
    assert cfg.batch_size == 7 and isinstance(cfg.batch_size, int)
    assert cfg.mean == [0.5, 0.5, 0.5]


def test_int_accepted_for_float_key(tmp_path):
    cfg = parse_args(["--config_path", write_yaml(tmp_path, "lr: 1\n")])
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)


@pytest.mark.parametrize("argv, needle", [
    (["--learning_rate", "0.1"], "unknown option '--learning_rate'"),
    (["--epoch_size", "ten"], "'epoch_size' expects int"),
    (["--run_distribute", "maybe"], "'run_distribute' expects bool"),
    (["--config_path", "/no/such.yaml"], "config file not found"),
])
def test_cli_errors_are_one_clear_line(argv, needle):
    with pytest.raises(ConfigError) as err:
        parse_args(argv)
    assert needle in err.value.message
    assert "\n" not in err.value.message


def test_unknown_yaml_key_names_the_closest_valid_one(tmp_path):
    with pytest.raises(ConfigError) as err:
        parse_args(["--config_path", write_yaml(tmp_path, "batchsize: 4\n")])
    assert "unknown key 'batchsize'" in err.value.message
    assert "did you mean 'batch_size'" in err.value.message


def test_paddle_aliases_carry_over(tmp_path):
    text = "classes_num: 37\nepochs: 5\nls_epsilon: 0.1\nimage_shape: [3, 64, 64]\nsave_interval: 2\n"
    cfg = parse_args(["--config_path", write_yaml(tmp_path, text)])
    assert (cfg.num_classes, cfg.epoch_size, cfg.label_smooth_factor, cfg.image_size,
            cfg.save_checkpoint_epochs) == (37, 5, 0.1, 64, 2)


def test_bad_key_from_the_entry_point_prints_one_line(repo_root, tmp_path):
    proc = subprocess.run([sys.executable, str(repo_root / "dla" / "train.py"), "--bach_size", "4"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert lines == ["error: config error: unknown option '--bach_size'; did you mean 'batch_size'?"]


def test_every_shipped_config_parses(repo_root):
    import yaml
    from common import list_models
    for path in sorted((repo_root / "config").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        assert data.get("model") in list_models(), f"{path.name}: model '{data.get('model')}' is not registered"
        parse_args(["--config_path", str(path)])  # every key known, every value of the right type
