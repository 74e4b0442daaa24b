#!/bin/bash
# GPU, one device (DEVICE_ID, default 0): bash run_standalone_train_gpu.sh [DATASET_PATH] [CONFIG_PATH]
# Run from <model>/scripts/ (or pass --model_dir); options: see scripts/_common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh" || exit 1
zoo_gpu_requirement
zoo_standalone_train GPU "$@"
