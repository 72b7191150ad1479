#!/usr/bin/env bash
# Start a Dask scheduler and N worker processes on this machine, for `dw2v train --scheduler-file`.
#
#   cluster/start_local.sh [N_WORKERS] [THREADS_PER_WORKER] [DIR]
#
# Writes DIR/scheduler.json (default DIR: ./dask-local) and the processes' logs, prints the
# dw2v command to run, and stops everything on Ctrl-C or when the script is killed.
set -euo pipefail
workers=${1:-2}
threads=${2:-1}
dir=${3:-dask-local}
mkdir -p "$dir"
scheduler_file="$dir/scheduler.json"
rm -f "$scheduler_file"
# Dask's background chores (event-loop ticks, system and memory monitors, the profiler) take
# time from the kernels when every core trains; the embedded LocalCluster uses the same settings
# (dw2v.dask_cluster.QUIET_CLUSTER). Set any of them in the environment to override.
export DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL=${DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL:-1s}
export DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL=${DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL:-5s}
export DASK_DISTRIBUTED__WORKER__MEMORY__MONITOR_INTERVAL=${DASK_DISTRIBUTED__WORKER__MEMORY__MONITOR_INTERVAL:-1s}
export DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=${DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED:-False}
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

python -m dask scheduler --host 127.0.0.1 --port 0 --dashboard-address :8787 \
    --scheduler-file "$scheduler_file" >"$dir/scheduler.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -s "$scheduler_file" ] && break; sleep 0.2; done
[ -s "$scheduler_file" ] || { echo "the scheduler did not start; see $dir/scheduler.log" >&2; exit 1; }
for i in $(seq "$workers"); do
    python -m dask worker --scheduler-file "$scheduler_file" --host 127.0.0.1 \
        --nworkers 1 --nthreads "$threads" --name "worker-$i" \
        --local-directory "$dir/worker-$i" >"$dir/worker-$i.log" 2>&1 &
    pids+=($!)
done
echo "scheduler and $workers workers running; logs in $dir/"
echo "  dw2v train INPUT... -o MODEL_DIR --scheduler-file $scheduler_file"
wait
