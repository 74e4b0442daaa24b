#!/bin/bash
# Ascend data parallel (HCCL): bash run_distribute_train.sh [RANK_TABLE_FILE] [DATASET_PATH] [DEVICE_NUM] [CONFIG_PATH]
# DEVICE_NUM is this server's device count; a multi-server table (hccl_tools.py --merge) is run on
# every server, which is found by its address in the table or SERVER_ID / RANK_START.
# Run from <model>/scripts/ (or pass --model_dir); options: see scripts/_common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh" || exit 1
zoo_distribute_train_ascend "$@"
