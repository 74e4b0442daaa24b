#!/bin/bash
# GPU evaluation: bash run_eval_gpu.sh [DATASET_PATH] [CHECKPOINT_PATH] [CONFIG_PATH]
# Run from <model>/scripts/ (or pass --model_dir); options: see scripts/_common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh" || exit 1
zoo_gpu_requirement
zoo_eval GPU "$@"
