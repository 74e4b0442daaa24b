"""Export a PeleeNet model. Usage: python peleenet/export.py --config_path config/peleenet_imagenet2012_config.yaml [--key value ...]"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.cli import entry  # noqa: E402  (importing common first sets the CPU fast path)

main = entry("export", "peleenet_imagenet2012_config.yaml")

if __name__ == "__main__":
    main()
