"""msrun's task script: writes the worker's rank and pid to its log, then becomes the model's script.

    msrun ... scripts/msrun_worker.py <model>/train.py --key value ...

msrun reports a failed worker by pid only; this first log line lets run_distribute_train_msrun.sh
name the rank. os.execv keeps the pid, so nothing stands between msrun and the worker.
"""
import os
import socket
import sys

if __name__ == "__main__":
    if len(sys.argv) < 2:  # else an interactive python would start
        print("error: no script to run: msrun ... scripts/msrun_worker.py <model>/train.py --key value ...",
              file=sys.stderr)
        sys.exit(2)
    if sys.argv[1] in ("-h", "--help"):  # ours, not python's
        print(__doc__.strip())
        sys.exit(0)
    if os.environ.get("MS_ROLE") == "MS_SCHED":
        who = "scheduler"
    else:
        who = f"rank {os.environ.get('RANK_ID', '?')} (local worker {os.environ.get('DEVICE_ID', '?')})"
    print(f"[msrun_worker] {who} pid {os.getpid()} on {socket.gethostname()}", flush=True)
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
