#!/usr/bin/env bash
# Start/stop Labelwise's local services, all on 127.0.0.1, detached, with PID files:
#   Prefect server (UI + API) and the `labelwise` work pool prefect.yaml names, the deployment
#   runner (serve), the Label Studio webhook receiver, the MLflow UI; Label Studio itself
#   through scripts/labelstudio.sh.
# Usage: scripts/services.sh up|down|status
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${LABELWISE_STATE_DIR:-$ROOT/.labelwise}"
RUN="$STATE/run"
BIN="$ROOT/.venv/bin"
PREFECT_PORT="${LW_PREFECT_PORT:-4200}"
MLFLOW_PORT="${LW_MLFLOW_PORT:-5000}"
WEBHOOK_PORT="${LABELWISE_WEBHOOK_PORT:-8091}"
mkdir -p "$RUN"

export PREFECT_HOME="${PREFECT_HOME:-$STATE/prefect}"
export PREFECT_API_URL="http://127.0.0.1:$PREFECT_PORT/api"
export PREFECT_SERVER_API_HOST=127.0.0.1
export PREFECT_SERVER_API_PORT="$PREFECT_PORT"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_UI_API_URL="$PREFECT_API_URL"
export LABELWISE_HOME="$ROOT"
export LABELWISE_PROJECT="${LABELWISE_PROJECT:-digits-demo}"
export LABELWISE_CONFIG="${LABELWISE_CONFIG:-}"
export LABELWISE_PROPOSE_CRON="${LABELWISE_PROPOSE_CRON:-0 6 * * *}"
export LABELWISE_RECONCILE_CRON="${LABELWISE_RECONCILE_CRON:-*/15 * * * *}"
export LABELWISE_WEBHOOK_PORT="$WEBHOOK_PORT"
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
export LW_MLFLOW_URL="http://127.0.0.1:$MLFLOW_PORT"  # learn artifacts link their MLflow run here
WORK_POOL=labelwise  # the pool prefect.yaml names

alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

start() {  # name, then the command; the process writes its own PID and leads its own group
  local name=$1; shift
  if alive "$name"; then echo "$name: already running (pid $(cat "$RUN/$name.pid"))"; return; fi
  rm -f "$RUN/$name.pid"
  (cd "$ROOT" && setsid bash -c 'echo $$ > "$0"; exec "$@"' "$RUN/$name.pid" "$@" \
      >"$RUN/$name.log" 2>&1 < /dev/null &)
  for _ in $(seq 1 100); do [ -s "$RUN/$name.pid" ] && break; sleep 0.1; done
  echo "$name: started (pid $(cat "$RUN/$name.pid"), log $RUN/$name.log)"
}

wait_http() {  # url, seconds
  local url=$1 limit=$2 t=0
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    sleep 1; t=$((t + 1))
    if [ "$t" -ge "$limit" ]; then echo "timed out waiting for $url" >&2; return 1; fi
  done
}

stop() {  # TERM the whole process group, KILL it after 10 s
  local name=$1
  if alive "$name"; then
    local pid; pid=$(cat "$RUN/$name.pid")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "$name: stopped"
  fi
  rm -f "$RUN/$name.pid"
}

ensure_work_pool() {  # prefect.yaml's pool, for `prefect deploy --all`; serve itself needs none
  if "$BIN/prefect" work-pool inspect "$WORK_POOL" >/dev/null 2>&1; then
    echo "work pool $WORK_POOL: exists"
  else
    "$BIN/prefect" work-pool create "$WORK_POOL" --type process >/dev/null
    echo "work pool $WORK_POOL: created (process type; the runner serves the deployments without it)"
  fi
}

write_env() {  # what a client process needs to talk to these services
  cat >"$RUN/env" <<ENV
PREFECT_HOME=$PREFECT_HOME
PREFECT_API_URL=$PREFECT_API_URL
PREFECT_SERVER_ANALYTICS_ENABLED=false
LW_MLFLOW_URL=http://127.0.0.1:$MLFLOW_PORT
LABELWISE_CONFIG=$LABELWISE_CONFIG
ENV
}

case "${1:-}" in
  up)
    write_env
    bash "$ROOT/scripts/labelstudio.sh" start
    start prefect-server "$BIN/prefect" server start --host 127.0.0.1 --port "$PREFECT_PORT"
    wait_http "$PREFECT_API_URL/health" 90
    ensure_work_pool
    start runner "$BIN/python" -m deployments.serve_flows
    start webhook "$BIN/python" -m deployments.webhook
    start mlflow-ui "$BIN/mlflow" ui --backend-store-uri "sqlite:///$STATE/mlflow.db" \
      --default-artifact-root "$STATE/mlartifacts" --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1
    echo "Prefect UI:   http://127.0.0.1:$PREFECT_PORT"
    echo "MLflow UI:    http://127.0.0.1:$MLFLOW_PORT"
    echo "Label Studio: http://127.0.0.1:${LW_LS_PORT:-8089}"
    echo "Webhook:      http://127.0.0.1:$WEBHOOK_PORT/webhooks/labelstudio"
    ;;
  down)
    for name in mlflow-ui webhook runner prefect-server; do stop "$name"; done
    bash "$ROOT/scripts/labelstudio.sh" stop || true
    ;;
  status)
    for name in prefect-server runner webhook mlflow-ui; do
      if alive "$name"; then echo "$name: running (pid $(cat "$RUN/$name.pid"))"; else echo "$name: stopped"; fi
    done
    bash "$ROOT/scripts/labelstudio.sh" status || true
    ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
