#!/bin/bash
# Data parallel with msrun on Ascend, GPU or CPU, one node or several:
#   bash run_distribute_train_msrun.sh [DATASET_PATH] [WORKER_NUM] [CONFIG_PATH]
#        [--local_worker_num N --node_rank R --master_addr IP --master_port P]
#        [--device_target Ascend|GPU|CPU] [--cluster_time_out SECONDS]
# WORKER_NUM counts all nodes' workers; run it on every node with the same --master_addr (node 0).
# Run from <model>/scripts/ (or pass --model_dir); options: see scripts/_common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh" || exit 1
zoo_distribute_train_msrun Ascend "$@"
