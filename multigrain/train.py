"""Train MultiGrain. Usage: python multigrain/train.py --config_path config/resnet50_imagenet2012_config.yaml [--key value ...]

THOR configs (optimizer: thor) run multigrain.src.thor's loop on Ascend/GPU; others the shared trainer."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.cli import CONFIG_DIR  # noqa: E402  (importing common first sets the CPU fast path)
from common.engine import run_main  # noqa: E402
from multigrain.src.task import HOOKS, train  # noqa: E402


def main(argv=None):
    return run_main(train, argv, os.path.join(CONFIG_DIR, "resnet50_imagenet2012_config.yaml"), HOOKS)


if __name__ == "__main__":
    main()
