#!/bin/bash
# Ascend, one device (DEVICE_ID, default 0): bash run_standalone_train.sh [DATASET_PATH] [CONFIG_PATH]
# Run from <model>/scripts/ (or pass --model_dir); options: see scripts/_common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh" || exit 1
zoo_standalone_train Ascend "$@"
