"""Entry point, the same file in every model folder: the task is this file's name, the family its folder.
Usage: python <family>/<task>.py [--config_path config/X.yaml] [--key value ...]"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.cli import main_for  # noqa: E402  (importing common first sets the CPU fast path)

main = main_for(__file__)

if __name__ == "__main__":
    main()
