"""Eval MultiGrain. Usage: python multigrain/eval.py --config_path config/resnet50_imagenet2012_config.yaml [--key value ...]"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.cli import entry  # noqa: E402  (importing common first sets the CPU fast path)
from multigrain.src.task import HOOKS  # noqa: E402

main = entry("eval", "resnet50_imagenet2012_config.yaml", HOOKS)

if __name__ == "__main__":
    main()
