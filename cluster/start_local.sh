#!/usr/bin/env bash
# Start a Dask scheduler and N worker processes on this machine, for `dw2v train --scheduler-file`.
#
#   cluster/start_local.sh [N_WORKERS] [THREADS_PER_WORKER] [DIR]
#
# Writes DIR/scheduler.json (default DIR: ./dask-local) and the processes' logs, waits until
# every worker has joined (START_TIMEOUT seconds, default 120), prints the dashboard's address
# and the dw2v command to run, and stops everything on Ctrl-C or when the script is killed.
# DASHBOARD (default :8787) is the dashboard's [HOST]:PORT.
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

python -m dask scheduler --host 127.0.0.1 --port 0 --dashboard-address "${DASHBOARD:-:8787}" \
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
# Wait for every worker to join, so that a run started next sees them all (dw2v plans its
# shards over the workers it finds).
wait_for_workers='
import sys
from distributed import Client
scheduler_file, workers, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with Client(scheduler_file=scheduler_file, timeout=timeout) as client:
    client.wait_for_workers(workers, timeout=timeout)
    print(client.dashboard_link)
'
if ! dashboard=$(python -c "$wait_for_workers" "$scheduler_file" "$workers" \
                 "${START_TIMEOUT:-120}" 2>>"$dir/start.log"); then
    echo "not every worker joined within ${START_TIMEOUT:-120} s; see the logs in $dir/" >&2
    exit 1
fi
echo "scheduler and $workers workers running; logs in $dir/"
echo "dashboard: $dashboard"
echo "  dw2v train INPUT... -o MODEL_DIR --scheduler-file $scheduler_file"
wait
