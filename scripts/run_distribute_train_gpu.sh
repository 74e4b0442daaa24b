#!/bin/bash
# GPU data parallel (mpirun, NCCL): bash run_distribute_train_gpu.sh [DATASET_PATH] [DEVICE_NUM] [CONFIG_PATH] [--hostfile FILE]
# Several hosts: an OpenMPI hostfile by --hostfile FILE or HOSTFILE=FILE; DEVICE_NUM counts all hosts' GPUs.
# Run from <model>/scripts/ (or pass --model_dir); options: see scripts/_common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh" || exit 1
zoo_gpu_requirement
zoo_distribute_train_gpu "$@"
