"""Predict with MultiGrain: top-k classes, and with ``--embeddings OUT.npy`` the images' retrieval embeddings.

Usage: python multigrain/predict.py --config_path config/resnet50_imagenet2012_config.yaml --ckpt_file CKPT \
           --predict_path IMAGES [--embeddings OUT.npy] [--key value ...]"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.cli import CONFIG_DIR  # noqa: E402  (importing common first sets the CPU fast path)
from common.engine import run_main  # noqa: E402
from multigrain.src.task import HOOKS, predict  # noqa: E402


def main(argv=None):
    return run_main(predict, argv, os.path.join(CONFIG_DIR, "resnet50_imagenet2012_config.yaml"), HOOKS)


if __name__ == "__main__":
    main()
