#!/bin/bash
# CPU data parallel (msrun): bash run_distribute_train_cpu.sh [DATASET_PATH] [WORKER_NUM] [CONFIG_PATH]
# = run_distribute_train_msrun.sh with --device_target CPU (same options: several nodes too).
# Run from <model>/scripts/ (or pass --model_dir); options: see scripts/_common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh" || exit 1
zoo_distribute_train_cpu "$@"
