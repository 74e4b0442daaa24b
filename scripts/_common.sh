#!/bin/bash
# Shared code of the run_*.sh launchers; sourced, never run. It only defines functions.
#
# Which model runs: the thin wrappers in <model>/scripts/ set MODEL_DIR; the top-level scripts
# also take `--model_dir DIR` (a folder or one of dla, peleenet, multigrain). The model's default
# config is its family record's (default_config, printed by scripts/default_config.py).
#
# Arguments: leading ones without `--` are the positional arguments of the usage text; from the
# first `--key` on, everything is passed through to train.py / eval.py as config overrides
# (e.g. `--epoch_size 2`), except the launcher's own options (msrun's --local_worker_num …, GPU's
# --hostfile), which a launcher names in ZOO_LAUNCHER_OPTS. Options that are paths (--resume,
# --pretrained, --ckpt_file, --data_path, --config_path, --output_dir) are made absolute first: the
# processes run in their own folders. `--dry_run` anywhere (or DRY_RUN=1) prints the exact
# environment and command of every process and starts nothing. Environment knobs: PYTHON
# (interpreter, default python), MASTER_PORT (msrun, default 8118), BIND_CORE=0 (no taskset
# pinning on Ascend), WAIT_JOBS=1 (wait for the background processes; the first to fail stops the
# others and the script exits naming it), SERVER_ID / RANK_START (which server of a multi-server
# rank table this is), HCCL_CONNECT_TIMEOUT (default 600), HOSTFILE (mpirun). DRY_RUN, WAIT_JOBS
# and BIND_CORE take 1/true/yes or 0/false/no; any other value stops the script.

ZOO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ZOO_SCRIPT=$(basename "$0")
ZOO_PIDS=()
ZOO_LABELS=()
ZOO_LOGS=()
ZOO_EXPORTS=()
ZOO_LAUNCHER_OPTS=()
# Config keys that are paths, made absolute before the processes change folder; the second set
# only when the path exists from here (otherwise it is relative to data_path, as train.py reads it).
ZOO_PATH_KEYS=(resume pretrained ckpt_file data_path config_path output_dir pretrained_model checkpoints model_save_dir)
ZOO_PATH_KEYS_IF_FOUND=(cls_label_path_train cls_label_path_val label_file)

# What MindSpore 2.10's GPU backend needs (docs/hardware.md says where each part was found: the
# wheel's plugins, the libraries they link, run_check, the install page). The GPU launchers print
# it as their first line, so that a CUDA 12 / Hopper machine learns why before anything starts.
ZOO_GPU_REQUIREMENT="[gpu] MindSpore 2.10 runs on CUDA 11.1 + cuDNN 8.0 or CUDA 11.6 + cuDNN 8.5 (libcudart.so.11.0, libcudnn.so.8), driver >= 450.80.02 / 510.39.01, GPUs of compute capability 6.0-8.6 (Pascal to Ampere); not CUDA 12 alone, not Hopper. Not run by this project: docs/hardware.md"

zoo_gpu_requirement() { echo "$ZOO_GPU_REQUIREMENT"; }

# zoo_die MESSAGE: one line on stderr and exit status 2, as every command we ship on a user's mistake
# (docs/errors.md); ZOO_STATUS, when set, is the status instead (a failed process's own).
zoo_die() {
    echo "$ZOO_SCRIPT: error: $*" >&2
    exit "${ZOO_STATUS:-2}"
}

zoo_truthy() {
    case "${1:-0}" in 1 | true | True | TRUE | yes | Yes | YES) return 0 ;; *) return 1 ;; esac
}

# zoo_check_flag NAME DEFAULT: sets the environment switch NAME to 1 or 0; a value we do not know
# (DRY_RUN=on) stops the script rather than guess: guessing "off" would start real processes.
zoo_check_flag() {
    local value=${!1:-$2}
    case "$value" in
    1 | true | True | TRUE | yes | Yes | YES) printf -v "$1" 1 ;;
    0 | false | False | FALSE | no | No | NO) printf -v "$1" 0 ;;
    *) zoo_die "$1 must be 1, true, yes, 0, false or no, got '$value'" ;;
    esac
}

# zoo_in_list KEY LIST...: whether KEY is one of LIST.
zoo_in_list() {
    local key=$1 item
    shift
    for item in "$@"; do [[ "$item" == "$key" ]] && return 0; done
    return 1
}

# zoo_abs_option KEY VALUE: VALUE made absolute if KEY is a path option (URLs and "" unchanged).
zoo_abs_option() {
    local key=$1 value=$2
    if [[ -z "$value" || "$value" == *://* ]]; then
        printf '%s' "$value"
    elif zoo_in_list "$key" "${ZOO_PATH_KEYS[@]}" ||
        { zoo_in_list "$key" "${ZOO_PATH_KEYS_IF_FOUND[@]}" && [[ -e "$value" ]]; }; then
        realpath -m -- "$value"
    else
        printf '%s' "$value"
    fi
}

# zoo_absolute_paths: rewrites the path options of ZOO_EXTRA (--key value and --key=value).
zoo_absolute_paths() {
    local i key word
    for ((i = 0; i < ${#ZOO_EXTRA[@]}; i++)); do
        word=${ZOO_EXTRA[i]}
        if [[ "$word" == --*=* ]]; then
            key=${word%%=*}
            ZOO_EXTRA[i]="$key=$(zoo_abs_option "${key#--}" "${word#*=}")"
        elif [[ "$word" == --* ]] && ((i + 1 < ${#ZOO_EXTRA[@]})) && [[ "${ZOO_EXTRA[i + 1]}" != --* ]]; then
            ZOO_EXTRA[i + 1]=$(zoo_abs_option "${word#--}" "${ZOO_EXTRA[i + 1]}")
            i=$((i + 1))
        fi
    done
}

# zoo_parse_args USAGE MIN MAX ARGS... -> ZOO_POS (positional), ZOO_EXTRA (overrides), DRY_RUN.
zoo_parse_args() {
    ZOO_USAGE="bash $ZOO_SCRIPT $1"
    local min=$2 max=$3
    shift 3
    ZOO_POS=()
    ZOO_EXTRA=()
    local key
    for key in DRY_RUN:0 WAIT_JOBS:0 BIND_CORE:1; do zoo_check_flag "${key%:*}" "${key#*:}"; done
    while (($#)); do
        key=${1%%=*}
        key=${key#--}
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
        --*)
            if zoo_in_list "$key" "${ZOO_LAUNCHER_OPTS[@]}"; then
                # the launcher's own option: ZOO_OPT_<key>, never passed to the model's script
                if [[ "$1" == *=* ]]; then
                    printf -v "ZOO_OPT_$key" '%s' "${1#*=}"
                else
                    (($# >= 2)) && [[ "$2" != --* ]] || zoo_die "--$key needs a value. Usage: $ZOO_USAGE"
                    printf -v "ZOO_OPT_$key" '%s' "$2"
                    shift
                fi
            else
                ZOO_EXTRA+=("$1")
            fi
            ;;
        *) if ((${#ZOO_EXTRA[@]})); then ZOO_EXTRA+=("$1"); else ZOO_POS+=("$1"); fi ;;
        esac
        shift
    done
    zoo_absolute_paths
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
    else  # the family record's default config (the last line printed: imports may print before it)
        local found
        found=$("$PYTHON" "$ZOO_ROOT/scripts/default_config.py" "$MODEL_DIR") \
            || zoo_die "no CONFIG_PATH given and no default config: ${found##*$'\n'}"
        ZOO_CONFIG=$(zoo_abs "${found##*$'\n'}")
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
# MODE bg: in the background, output to LOG; fg: in the foreground, stderr to LOG if one is given.
zoo_launch() {
    local label=$1 dir=$2 log=$3 mode=$4 line
    line="[$label]"
    ((${#ZOO_ENV[@]})) && line+=" $(zoo_quote "${ZOO_ENV[@]}")"
    line+=" cd $(zoo_quote "$dir") && $(zoo_quote "${ZOO_CMD[@]}")"
    [[ "$mode" == bg ]] && line+=" > $(zoo_quote "$log") 2>&1 &"
    [[ "$mode" == fg && -n "$log" ]] && line+=" 2> $(zoo_quote "$log")"
    echo "$line"
    ((DRY_RUN)) && return 0
    mkdir -p "$dir" || zoo_die "cannot create folder '$dir'"
    if [[ "$mode" == bg ]]; then
        # with WAIT_JOBS each process gets its own process group, so stopping it stops its children
        ((WAIT_JOBS)) && set -m
        (cd "$dir" && exec env "${ZOO_ENV[@]}" "${ZOO_CMD[@]}" >"$log" 2>&1) &
        ZOO_PIDS+=($!)
        set +m
        ZOO_LABELS+=("$label")
        ZOO_LOGS+=("$log")
    elif [[ -n "$log" ]]; then
        mkdir -p "$(dirname "$log")" || zoo_die "cannot create folder '$(dirname "$log")'"
        (cd "$dir" && exec env "${ZOO_ENV[@]}" "${ZOO_CMD[@]}" 2>"$log")
    else
        (cd "$dir" && exec env "${ZOO_ENV[@]}" "${ZOO_CMD[@]}")
    fi
}

zoo_any_running() {
    local pid
    for pid in "${ZOO_PIDS[@]}"; do kill -0 -- "-$pid" 2>/dev/null && return 0; done
    return 1
}

# zoo_stop_all: TERM to every process group still running, KILL to those left after 10 s.
zoo_stop_all() {
    local pid tries
    for pid in "${ZOO_PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
    for ((tries = 0; tries < 100; tries++)); do
        zoo_any_running || return 0
        sleep 0.1
    done
    for pid in "${ZOO_PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null; done
}

# zoo_status_text STATUS: "status 1", or "signal 9 (status 137)" for a process killed by a signal.
zoo_status_text() {
    if (($1 > 128)); then echo "signal $(($1 - 128)) (status $1)"; else echo "status $1"; fi
}

# zoo_finish: after background launches; with WAIT_JOBS=1 waits for them: the first to exit
# non-zero stops the others and the script fails naming it and its log.
zoo_finish() {
    ((DRY_RUN)) && {
        echo "[dry run] nothing started"
        return 0
    }
    echo "started ${#ZOO_PIDS[@]} process(es) in the background: ${ZOO_PIDS[*]}"
    ((WAIT_JOBS)) || return 0
    trap 'zoo_stop_all; zoo_die "interrupted; stopped all ${#ZOO_PIDS[@]} process(es)"' INT TERM
    local pid status i running=("${ZOO_PIDS[@]}") left
    while ((${#running[@]})); do
        # only the processes not yet reaped: bash forgets a job once waited for, and names every
        # forgotten pid in the list ("wait: N: no such job") on each later call
        pid=""
        wait -n -p pid "${running[@]}"
        status=$?
        [[ -n "$pid" ]] || break # nothing left to wait for
        left=()
        for i in "${running[@]}"; do [[ "$i" == "$pid" ]] || left+=("$i"); done
        running=("${left[@]}")
        ((status == 0)) && continue
        for ((i = 0; i < ${#ZOO_PIDS[@]}; i++)); do [[ "${ZOO_PIDS[i]}" == "$pid" ]] && break; done
        zoo_stop_all
        ZOO_STATUS=$status zoo_die "${ZOO_LABELS[i]} exited with $(zoo_status_text "$status") first; stopped the others. Its log: ${ZOO_LOGS[i]}"
    done
    trap - INT TERM
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

# Ascend, HCCL: one background process per device of this server in train_parallel$RANK_ID/.
# hccl_tools.py --plan reads the (possibly multi-server) rank table: which server this is
# (SERVER_ID / RANK_START / this host's address), its ranks and their device ids.
zoo_distribute_train_ascend() {
    zoo_parse_args "[RANK_TABLE_FILE] [DATASET_PATH] [DEVICE_NUM: this server's] [CONFIG_PATH(optional)]" 3 4 "$@"
    local table n=${ZOO_POS[2]} i cpus avg plan rank_size word rank device
    table=$(zoo_abs "${ZOO_POS[0]}")
    zoo_need_file "RANK_TABLE_FILE" "$table"
    zoo_need_count "DEVICE_NUM" "$n"
    zoo_common_setup train.py "${ZOO_POS[1]}" "${ZOO_POS[3]}"
    plan=$("$PYTHON" "$ZOO_ROOT/scripts/hccl_tools.py" --plan "$table" --local_device_num "$n") || exit # its one line said why
    mapfile -t plan <<<"$plan"
    read -r word rank_size <<<"${plan[0]}"
    [[ "$word" == RANK_SIZE ]] || zoo_die "unexpected plan line from hccl_tools.py: ${plan[0]}"
    zoo_export RANK_TABLE_FILE="$table" RANK_SIZE="$rank_size" DEVICE_NUM="$n" \
        HCCL_CONNECT_TIMEOUT="${HCCL_CONNECT_TIMEOUT:-600}"
    zoo_print_exports
    cpus=$(nproc 2>/dev/null || echo 0)
    avg=$((cpus / n))
    for ((i = 0; i < n; i++)); do
        read -r _ rank _ device <<<"${plan[i + 1]}"
        ZOO_ENV=(DEVICE_ID="$device" RANK_ID="$rank" RANK_SIZE="$rank_size")
        zoo_python_cmd Ascend --run_distribute True
        if ((BIND_CORE)) && ((avg > 0)) && command -v taskset >/dev/null; then
            ZOO_CMD=(taskset -c "$((i * avg))-$((i * avg + avg - 1))" "${ZOO_CMD[@]}")
        fi
        zoo_launch "rank $rank" "$PWD/train_parallel$rank" "$PWD/train_parallel$rank/log" bg
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

# GPU, NCCL: mpirun -n N in train_parallel/ (background, log train_parallel/log); several hosts
# with --hostfile FILE or HOSTFILE=FILE (mpirun's hostfile; the environment goes along with -x).
zoo_distribute_train_gpu() {
    ZOO_LAUNCHER_OPTS=(hostfile)
    zoo_parse_args "[DATASET_PATH] [DEVICE_NUM: in all] [CONFIG_PATH(optional)] [--hostfile FILE]" 2 3 "$@"
    local n=${ZOO_POS[1]} hostfile=${ZOO_OPT_hostfile:-${HOSTFILE:-}} hosts=() kv
    zoo_need_count "DEVICE_NUM" "$n"
    zoo_common_setup train.py "${ZOO_POS[0]}" "${ZOO_POS[2]}"
    zoo_need_command mpirun "install OpenMPI for multi-GPU training"
    zoo_export RANK_SIZE="$n" DEVICE_NUM="$n"
    if [[ -n "$hostfile" ]]; then
        hostfile=$(zoo_abs "$hostfile")
        zoo_need_file "hostfile" "$hostfile"
        hosts=(--hostfile "$hostfile" -x PYTHONPATH)
        for kv in "${ZOO_EXPORTS[@]}"; do hosts+=(-x "${kv%%=*}"); done
    fi
    zoo_print_exports
    ZOO_ENV=()
    zoo_python_cmd GPU --run_distribute True
    ZOO_CMD=(mpirun -n "$n" "${hosts[@]}" --allow-run-as-root --output-filename log_output --merge-stderr-to-stdout "${ZOO_CMD[@]}")
    zoo_launch mpirun "$PWD/train_parallel" "$PWD/train_parallel/log" bg
    zoo_finish
}

# msrun (MindSpore's launcher, any target): WORKER_NUM workers in all, --local_worker_num of them
# here (default all), in the foreground in train_parallel/; logs in train_parallel/msrun_log/
# (worker_<rank>.log, scheduler.log, msrun.err). msrun's --join stops every worker when one fails;
# scripts/msrun_worker.py makes each worker's log say its rank and pid, so that this script can
# name the worker that failed first.
zoo_distribute_train_msrun() {
    local default_target=$1
    shift
    ZOO_LAUNCHER_OPTS=(local_worker_num node_rank master_addr master_port device_target cluster_time_out)
    zoo_parse_args "[DATASET_PATH] [WORKER_NUM: in all] [CONFIG_PATH(optional)] [--local_worker_num N --node_rank R --master_addr IP --master_port P] [--device_target Ascend|GPU|CPU] [--cluster_time_out SECONDS]" 2 3 "$@"
    local n=${ZOO_POS[1]} target=${ZOO_OPT_device_target:-$default_target} dir="$PWD/train_parallel"
    local local_n=${ZOO_OPT_local_worker_num:-${ZOO_POS[1]}} node_rank=${ZOO_OPT_node_rank:-}
    local addr=${ZOO_OPT_master_addr:-} port=${ZOO_OPT_master_port:-${MASTER_PORT:-8118}}
    local timeout=${ZOO_OPT_cluster_time_out:-600} nodes=() rc
    zoo_need_count "WORKER_NUM" "$n"
    zoo_need_count "--local_worker_num" "$local_n"
    zoo_need_count "--cluster_time_out" "$timeout"
    [[ "$target" == GPU ]] && zoo_gpu_requirement
    case "$target" in Ascend | GPU | CPU) ;; *) zoo_die "--device_target must be Ascend, GPU or CPU, got '$target'" ;; esac
    ((local_n <= n)) || zoo_die "--local_worker_num $local_n is more than WORKER_NUM $n"
    [[ "$port" =~ ^[0-9]+$ ]] && ((port >= 1024 && port <= 65535)) || zoo_die "MASTER_PORT must be 1024..65535, got '$port'"
    [[ -z "$node_rank" ]] || { [[ "$node_rank" =~ ^[0-9]+$ ]] && ((node_rank * local_n < n)); } ||
        zoo_die "--node_rank must be 0..$(((n - 1) / local_n)) for $n workers, $local_n per node; got '$node_rank'"
    if ((local_n < n)); then
        [[ -n "$addr" ]] || zoo_die "--master_addr is needed when this node runs $local_n of $n workers: node 0's IP"
        nodes=(--master_addr "$addr")
        [[ -n "$node_rank" ]] && nodes+=(--node_rank "$node_rank")
    fi
    zoo_common_setup train.py "${ZOO_POS[0]}" "${ZOO_POS[2]}"
    zoo_need_command msrun "it comes with MindSpore >= 2.3"
    # the scheduler listens here when this is node 0 (or the only one): its port must be free
    if ((!DRY_RUN)) && [[ $local_n == "$n" || "$node_rank" == 0 ]]; then
        "$PYTHON" -c "import socket,sys; s=socket.socket(); s.bind(('', int(sys.argv[1])))" "$port" 2>/dev/null ||
            zoo_die "MASTER_PORT $port is in use; choose another, e.g. --master_port $((port + 1))"
    fi
    [[ "$target" == Ascend ]] && zoo_export HCCL_CONNECT_TIMEOUT="${HCCL_CONNECT_TIMEOUT:-600}"
    zoo_print_exports
    ZOO_ENV=()
    zoo_python_cmd "$target" --run_distribute True
    ZOO_CMD=(msrun --worker_num "$n" --local_worker_num "$local_n" "${nodes[@]}" --master_port "$port"
        --cluster_time_out "$timeout" --log_dir "$dir/msrun_log" --join=True
        "$ZOO_ROOT/scripts/msrun_worker.py" "${ZOO_CMD[@]:1}")
    zoo_launch msrun "$dir" "$dir/msrun_log/msrun.err" fg
    rc=$?
    if ((DRY_RUN)); then
        echo "[dry run] nothing started"
    elif ((rc != 0)); then
        zoo_msrun_failure "$dir/msrun_log" "$rc"
    fi
    return 0
}

# zoo_msrun_failure LOG_DIR STATUS: one line naming the worker msrun saw fail first, then exit with
# that worker's status (2: a user error, 3: diverged; 128+N: killed by signal N), else msrun's.
zoo_msrun_failure() {
    local logs=$1 rc=$2 pid code log rank status
    read -r pid code < <(sed -nE 's/.*Worker process ([0-9]+) exit with exception\. Error code: (-?[0-9]+).*/\1 \2/p' \
        "$logs/msrun.err" 2>/dev/null | head -n 1)
    if [[ -n "$pid" ]]; then
        log=$(grep -lE "^\[msrun_worker\] .* pid $pid\b" "$logs"/worker_*.log 2>/dev/null | head -n 1)
        rank=$(sed -nE "s/^\[msrun_worker\] (rank [^ ]+( \(local worker [0-9]+\))?) pid $pid\b.*/\1/p" "$log" 2>/dev/null | head -n 1)
        if ((code < 0)); then status=$((128 - code)) code="signal $((-code))"; else status=$code code="status $code"; fi
        ((status > 0 && status < 256)) || status=$rc
        ZOO_STATUS=$status zoo_die "${rank:-worker pid $pid} exited with $code first; msrun stopped the others. Its log: ${log:-$logs}"
    fi
    ZOO_STATUS=$rc zoo_die "msrun failed (status $rc); see $logs/msrun.err and the worker logs in $logs/"
}

# CPU: the msrun launcher with --device_target CPU.
zoo_distribute_train_cpu() {
    zoo_distribute_train_msrun CPU "$@"
}
