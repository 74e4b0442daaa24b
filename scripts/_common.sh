#!/bin/bash
# Shared code of the run_*.sh launchers; sourced, never run. It only defines functions.
#
# Which model runs: the thin wrappers in <model>/scripts/ set MODEL_DIR; the top-level scripts
# also take `--model_dir DIR` (a folder or one of dla, peleenet, multigrain). The model's default
# config comes from <model>/scripts/_model.sh (DEFAULT_CONFIG, relative to the repository root).
#
# Arguments: leading ones without `--` are the positional arguments of the usage text; from the
# first `--key` on, everything is passed through to train.py / eval.py as config overrides
# (e.g. `--epoch_size 2`). `--dry_run` anywhere (or DRY_RUN=1) prints the exact environment and
# command of every process and starts nothing. Environment knobs: PYTHON (interpreter, default
# python), MASTER_PORT (msrun, default 8118), BIND_CORE=0 (no taskset pinning on Ascend),
# WAIT_JOBS=1 (wait for background processes and return their failure).

ZOO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ZOO_SCRIPT=$(basename "$0")
ZOO_PIDS=()
ZOO_EXPORTS=()

zoo_die() {
    echo "$ZOO_SCRIPT: error: $*" >&2
    exit 1
}

zoo_truthy() {
    case "${1:-0}" in 1 | true | True | TRUE | yes | Yes | YES) return 0 ;; *) return 1 ;; esac
}

# zoo_parse_args USAGE MIN MAX ARGS... -> ZOO_POS (positional), ZOO_EXTRA (overrides), DRY_RUN.
zoo_parse_args() {
    ZOO_USAGE="bash $ZOO_SCRIPT $1"
    local min=$2 max=$3
    shift 3
    ZOO_POS=()
    ZOO_EXTRA=()
    if zoo_truthy "${DRY_RUN:-0}"; then DRY_RUN=1; else DRY_RUN=0; fi
    while (($#)); do
        case "$1" in
        -h | --help)
            echo "Usage: $ZOO_USAGE [--dry_run] [--key value ...]"
            exit 0
            ;;
        --dry_run | --dry-run) DRY_RUN=1 ;;
        --model_dir=*) MODEL_DIR=${1#*=} ;;
        --model_dir)
            (($# >= 2)) || zoo_die "--model_dir needs a folder. Usage: $ZOO_USAGE"
            MODEL_DIR=$2
            shift
            ;;
        --*) ZOO_EXTRA+=("$1") ;;
        *) if ((${#ZOO_EXTRA[@]})); then ZOO_EXTRA+=("$1"); else ZOO_POS+=("$1"); fi ;;
        esac
        shift
    done
    local n=${#ZOO_POS[@]}
    if ((n < min || n > max)); then
        local want=$min
        ((max > min)) && want="$min to $max"
        zoo_die "expected $want arguments, got $n. Usage: $ZOO_USAGE"
    fi
    PYTHON=${PYTHON:-$(command -v python >/dev/null && echo python || echo python3)}
}

# zoo_abs PATH: absolute, normalised path (relative paths are taken from the current folder).
zoo_abs() {
    realpath -m -- "$1"
}

zoo_need_file() { [[ -f "$2" ]] || zoo_die "$1 '$2' is not a file"; }
zoo_need_dir() { [[ -d "$2" ]] || zoo_die "$1 '$2' is not a folder"; }
zoo_need_count() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || zoo_die "$1 must be a positive integer, got '$2'"; }

# zoo_model ENTRY [CONFIG_ARG]: checks MODEL_DIR/ENTRY, sets ZOO_ENTRY and ZOO_CONFIG.
zoo_model() {
    local entry=$1 config_arg=$2
    [[ -n "$MODEL_DIR" ]] || zoo_die "no model chosen: run the script in <model>/scripts/ or pass --model_dir (dla, peleenet, multigrain)"
    [[ -d "$MODEL_DIR" || ! -d "$ZOO_ROOT/$MODEL_DIR" ]] || MODEL_DIR="$ZOO_ROOT/$MODEL_DIR"
    MODEL_DIR=$(zoo_abs "$MODEL_DIR")
    ZOO_ENTRY="$MODEL_DIR/$entry"
    zoo_need_file "model entry" "$ZOO_ENTRY"
    if [[ -n "$config_arg" ]]; then
        ZOO_CONFIG=$(zoo_abs "$config_arg")
    else
        local DEFAULT_CONFIG=""
        [[ -f "$MODEL_DIR/scripts/_model.sh" ]] && source "$MODEL_DIR/scripts/_model.sh"
        [[ -n "$DEFAULT_CONFIG" ]] || zoo_die "no CONFIG_PATH given and $MODEL_DIR/scripts/_model.sh sets no DEFAULT_CONFIG"
        [[ "$DEFAULT_CONFIG" == /* ]] || DEFAULT_CONFIG="$ZOO_ROOT/$DEFAULT_CONFIG"
        ZOO_CONFIG=$(zoo_abs "$DEFAULT_CONFIG")
    fi
    zoo_need_file "CONFIG_PATH" "$ZOO_CONFIG"
}

# zoo_python_cmd TARGET [ARGS...]: the model entry's command line for device TARGET -> ZOO_CMD.
zoo_python_cmd() {
    local target=$1
    shift
    ZOO_CMD=("$PYTHON" "$ZOO_ENTRY" --config_path "$ZOO_CONFIG" --data_path "$ZOO_DATA" --device_target "$target" "$@" "${ZOO_EXTRA[@]}")
}

# zoo_export NAME=VALUE...: exported for every process started by this script.
zoo_export() {
    local kv
    for kv in "$@"; do
        export "${kv?}"
        ZOO_EXPORTS+=("$kv")
    done
}

zoo_quote() {
    local out="" word
    for word in "$@"; do out+=" $(printf '%q' "$word")"; done
    printf '%s' "${out# }"
}

zoo_print_exports() {
    echo "[env] export $(zoo_quote PYTHONPATH="$PYTHONPATH" "${ZOO_EXPORTS[@]}")"
}

# zoo_launch LABEL WORKDIR LOG MODE: runs ZOO_CMD with the variables ZOO_ENV in WORKDIR;
# MODE bg: in the background, output to LOG; fg: in the foreground (LOG unused).
zoo_launch() {
    local label=$1 dir=$2 log=$3 mode=$4 line
    line="[$label]"
    ((${#ZOO_ENV[@]})) && line+=" $(zoo_quote "${ZOO_ENV[@]}")"
    line+=" cd $(zoo_quote "$dir") && $(zoo_quote "${ZOO_CMD[@]}")"
    [[ "$mode" == bg ]] && line+=" > $(zoo_quote "$log") 2>&1 &"
    echo "$line"
    ((DRY_RUN)) && return 0
    mkdir -p "$dir" || zoo_die "cannot create folder '$dir'"
    if [[ "$mode" == bg ]]; then
        (cd "$dir" && exec env "${ZOO_ENV[@]}" "${ZOO_CMD[@]}" >"$log" 2>&1) &
        ZOO_PIDS+=($!)
    else
        (cd "$dir" && exec env "${ZOO_ENV[@]}" "${ZOO_CMD[@]}")
    fi
}

# zoo_finish: after background launches; with WAIT_JOBS=1 waits and fails if any process failed.
zoo_finish() {
    ((DRY_RUN)) && {
        echo "[dry run] nothing started"
        return 0
    }
    echo "started ${#ZOO_PIDS[@]} process(es) in the background: ${ZOO_PIDS[*]}"
    zoo_truthy "${WAIT_JOBS:-0}" || return 0
    local pid failed=0
    for pid in "${ZOO_PIDS[@]}"; do wait "$pid" || failed=$((failed + 1)); done
    ((failed == 0)) || zoo_die "$failed of ${#ZOO_PIDS[@]} process(es) failed; see their logs"
}

zoo_need_command() {
    ((DRY_RUN)) && return 0
    command -v "$1" >/dev/null || zoo_die "'$1' not found on PATH ($2)"
}

# zoo_common_setup ENTRY DATA [CONFIG]: model, dataset and config checks; PYTHONPATH export.
zoo_common_setup() {
    zoo_model "$1" "$3"
    ZOO_DATA=$(zoo_abs "$2")
    zoo_need_dir "DATASET_PATH" "$ZOO_DATA"
    export PYTHONPATH="$ZOO_ROOT${PYTHONPATH:+:$PYTHONPATH}"
}

# ---- the launchers (one per top-level script) ----

# Ascend, HCCL: one background process per device in train_parallel$i/.
zoo_distribute_train_ascend() {
    zoo_parse_args "[RANK_TABLE_FILE] [DATASET_PATH] [DEVICE_NUM] [CONFIG_PATH(optional)]" 3 4 "$@"
    local table n=${ZOO_POS[2]} i cpus avg
    table=$(zoo_abs "${ZOO_POS[0]}")
    zoo_need_file "RANK_TABLE_FILE" "$table"
    zoo_need_count "DEVICE_NUM" "$n"
    zoo_common_setup train.py "${ZOO_POS[1]}" "${ZOO_POS[3]}"
    "$PYTHON" "$ZOO_ROOT/scripts/hccl_tools.py" --check "$table" --rank_size "$n" || exit 1
    zoo_export RANK_TABLE_FILE="$table" RANK_SIZE="$n" DEVICE_NUM="$n"
    zoo_print_exports
    cpus=$(nproc 2>/dev/null || echo 0)
    avg=$((cpus / n))
    for ((i = 0; i < n; i++)); do
        ZOO_ENV=(DEVICE_ID="$i" RANK_ID="$i" RANK_SIZE="$n")
        zoo_python_cmd Ascend --run_distribute True
        if zoo_truthy "${BIND_CORE:-1}" && ((avg > 0)) && command -v taskset >/dev/null; then
            ZOO_CMD=(taskset -c "$((i * avg))-$((i * avg + avg - 1))" "${ZOO_CMD[@]}")
        fi
        zoo_launch "rank $i" "$PWD/train_parallel$i" "$PWD/train_parallel$i/log" bg
    done
    zoo_finish
}

# One device (Ascend or GPU), DEVICE_ID from the environment (default 0), in train/.
zoo_standalone_train() {
    local target=$1
    shift
    zoo_parse_args "[DATASET_PATH] [CONFIG_PATH(optional)]" 1 2 "$@"
    zoo_common_setup train.py "${ZOO_POS[0]}" "${ZOO_POS[1]}"
    zoo_export DEVICE_ID="${DEVICE_ID:-0}" RANK_ID=0 RANK_SIZE=1 DEVICE_NUM=1
    zoo_print_exports
    ZOO_ENV=()
    zoo_python_cmd "$target"
    zoo_launch train "$PWD/train" "$PWD/train/log" bg
    zoo_finish
}

# Evaluation of a checkpoint on one device, in eval/.
zoo_eval() {
    local target=$1 ckpt
    shift
    zoo_parse_args "[DATASET_PATH] [CHECKPOINT_PATH] [CONFIG_PATH(optional)]" 2 3 "$@"
    ckpt=$(zoo_abs "${ZOO_POS[1]}")
    zoo_need_file "CHECKPOINT_PATH" "$ckpt"
    zoo_common_setup eval.py "${ZOO_POS[0]}" "${ZOO_POS[2]}"
    zoo_export DEVICE_ID="${DEVICE_ID:-0}"
    zoo_print_exports
    ZOO_ENV=()
    zoo_python_cmd "$target" --ckpt_file "$ckpt"
    zoo_launch eval "$PWD/eval" "$PWD/eval/log" bg
    zoo_finish
}

# GPU, NCCL: mpirun -n N in train_parallel/ (background, log train_parallel/log).
zoo_distribute_train_gpu() {
    zoo_parse_args "[DATASET_PATH] [DEVICE_NUM] [CONFIG_PATH(optional)]" 2 3 "$@"
    local n=${ZOO_POS[1]}
    zoo_need_count "DEVICE_NUM" "$n"
    zoo_common_setup train.py "${ZOO_POS[0]}" "${ZOO_POS[2]}"
    zoo_need_command mpirun "install OpenMPI for multi-GPU training"
    zoo_export RANK_SIZE="$n" DEVICE_NUM="$n"
    zoo_print_exports
    ZOO_ENV=()
    zoo_python_cmd GPU --run_distribute True
    ZOO_CMD=(mpirun -n "$n" --allow-run-as-root --output-filename log_output --merge-stderr-to-stdout "${ZOO_CMD[@]}")
    zoo_launch mpirun "$PWD/train_parallel" "$PWD/train_parallel/log" bg
    zoo_finish
}

# CPU: msrun with N local workers, in the foreground; worker logs in train_parallel/msrun_log/.
zoo_distribute_train_cpu() {
    zoo_parse_args "[DATASET_PATH] [WORKER_NUM] [CONFIG_PATH(optional)]" 2 3 "$@"
    local n=${ZOO_POS[1]} port=${MASTER_PORT:-8118} dir="$PWD/train_parallel"
    zoo_need_count "WORKER_NUM" "$n"
    zoo_common_setup train.py "${ZOO_POS[0]}" "${ZOO_POS[2]}"
    zoo_need_command msrun "it comes with MindSpore >= 2.3"
    [[ "$port" =~ ^[0-9]+$ ]] && ((port >= 1024 && port <= 65535)) || zoo_die "MASTER_PORT must be 1024..65535, got '$port'"
    if ((!DRY_RUN)); then
        "$PYTHON" -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1])))" "$port" 2>/dev/null ||
            zoo_die "MASTER_PORT $port is in use; choose another, e.g. MASTER_PORT=8119 bash $ZOO_SCRIPT ..."
    fi
    zoo_print_exports
    ZOO_ENV=()
    zoo_python_cmd CPU --run_distribute True
    ZOO_CMD=(msrun --worker_num "$n" --local_worker_num "$n" --master_port "$port" --log_dir "$dir/msrun_log" --join=True "${ZOO_CMD[@]:1}")
    zoo_launch msrun "$dir" "" fg || zoo_die "msrun failed; worker logs in $dir/msrun_log/"
    ((DRY_RUN)) && echo "[dry run] nothing started"
    return 0
}
