#!/usr/bin/env bash
# Run a local, headless Label Studio server for Labelwise (a separate service, like a database).
#
# The server lives in its own virtualenv (.venv-labelstudio) because installing it next to the
# project's dependencies drags prefect down. Everything binds 127.0.0.1.
#
# Usage: scripts/labelstudio.sh install|start|stop|status|restart
#   install  separate venv + label-studio (idempotent: a stamp file makes re-runs instant)
#   start    detached server on 127.0.0.1; waits until the API accepts the token; prints the URL
#            (exit 0 at once when it is already running)
#   stop     TERM by PID, KILL after LW_LS_STOP_TIMEOUT seconds
#   status   prints "running (...)" (exit 0) or "not running" (exit 3)
#
# Environment (defaults in brackets):
#   LW_LS_PORT [8089]                    LW_LS_DATA_DIR [<repo>/.labelwise/labelstudio]
#   LW_LS_DOCUMENT_ROOT [<repo>/.labelwise] local-files serving root; storages use a subfolder
#   LW_LS_USERNAME [admin@labelwise.local] LW_LS_PASSWORD [labelwise-dev-password]
#   LW_LS_TOKEN [labelwise-dev-token]    legacy API token of the admin user (> 5 chars)
#   LW_LS_VENV [<repo>/.venv-labelstudio] LW_LS_PYTHON [python3.11]
#   LW_LS_START_TIMEOUT [180]            seconds to wait for the API to answer
#   LW_LS_STOP_TIMEOUT [20]              seconds to wait after TERM before KILL
set -euo pipefail

LS_VERSION="1.23.2"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LW_LS_VENV:-$REPO_ROOT/.venv-labelstudio}"
PYTHON_BIN="${LW_LS_PYTHON:-python3.11}"
LS_PORT="${LW_LS_PORT:-8089}"
DATA_DIR="${LW_LS_DATA_DIR:-$REPO_ROOT/.labelwise/labelstudio}"
DOCUMENT_ROOT="${LW_LS_DOCUMENT_ROOT:-$REPO_ROOT/.labelwise}"
LS_USERNAME="${LW_LS_USERNAME:-admin@labelwise.local}"
LS_PASSWORD="${LW_LS_PASSWORD:-labelwise-dev-password}"
LS_TOKEN="${LW_LS_TOKEN:-labelwise-dev-token}"
START_TIMEOUT="${LW_LS_START_TIMEOUT:-180}"
STOP_TIMEOUT="${LW_LS_STOP_TIMEOUT:-20}"
BIND_HOST="127.0.0.1"
URL="http://$BIND_HOST:$LS_PORT"
PID_FILE="$DATA_DIR/labelstudio.pid"
LOG_FILE="$DATA_DIR/labelstudio.log"
STAMP="$VENV/.labelwise-installed-$LS_VERSION"

log() { printf 'labelstudio: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

cmd_install() {
    if [[ -f "$STAMP" && -x "$VENV/bin/label-studio" ]]; then
        log "label-studio $LS_VERSION already installed in $VENV"
        return 0
    fi
    command -v "$PYTHON_BIN" >/dev/null || die "expected $PYTHON_BIN on PATH; not found"
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating virtualenv $VENV"
        "$PYTHON_BIN" -m venv "$VENV"
    fi
    log "installing label-studio==$LS_VERSION into $VENV (a few minutes)"
    # The machine's pip config lists local indexes; drop its "Location ... is ignored" noise.
    {
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
        "$VENV/bin/python" -m pip install --quiet "label-studio==$LS_VERSION"
    } 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; } >&2
    # Not `label-studio --version`: in 1.23 that STARTS a server on all interfaces, port 8080.
    "$VENV/bin/python" -c "import importlib.metadata as m, sys; v = m.version('label-studio'); sys.exit(v != '$LS_VERSION')" \
        || die "expected label-studio $LS_VERSION in $VENV; the install did not produce it"
    touch "$STAMP"
    log "installed label-studio $LS_VERSION in $VENV"
}

# The pid in the pid file when that process is alive, else nothing.
live_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Guard against pid reuse: the process must be a label-studio server.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'label-studio' || return 1
    printf '%s' "$pid"
}

# HTTP status of an authenticated API call (000 when nothing answers).
api_status() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
        -H "Authorization: Token $LS_TOKEN" "$URL/api/projects?page_size=1" || true
}

cmd_start() {
    [[ -x "$VENV/bin/label-studio" ]] || die "no Label Studio in $VENV; run: $0 install"
    [[ ${#LS_TOKEN} -gt 5 ]] || die "LW_LS_TOKEN must be longer than 5 characters; got ${#LS_TOKEN}"
    mkdir -p "$DATA_DIR" "$DOCUMENT_ROOT"
    local pid started=0
    if pid="$(live_pid)"; then
        if [[ "$(api_status)" == "200" ]]; then
            log "already running (pid $pid)"
            echo "$URL"
            return 0
        fi
        log "pid $pid is alive but the API does not accept the token yet; waiting"
    else
        rm -f "$PID_FILE"
        local code
        code="$(api_status)"
        [[ "$code" == "000" ]] || die "port $LS_PORT already answers (HTTP $code) but not from a server of $DATA_DIR; choose another LW_LS_PORT"
        log "starting on $URL (data $DATA_DIR, document root $DOCUMENT_ROOT, log $LOG_FILE)"
        (
            cd "$DATA_DIR"
            export LABEL_STUDIO_BASE_DATA_DIR="$DATA_DIR"
            export LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true
            export LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true
            export LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT="$DOCUMENT_ROOT"
            export LABEL_STUDIO_SSRF_PROTECTION_ENABLED=false
            export LATEST_VERSION_CHECK=false COLLECT_ANALYTICS=false SENTRY_DSN= FRONTEND_SENTRY_DSN=
            # Credentials through the environment, not argv (which `ps` shows to every user).
            # They create the admin user and its token on the first start only.
            export LABEL_STUDIO_USERNAME="$LS_USERNAME" LABEL_STUDIO_PASSWORD="$LS_PASSWORD"
            export LABEL_STUDIO_USER_TOKEN="$LS_TOKEN"
            # A stable Django secret (sessions survive restarts), kept in the data dir.
            if [[ ! -s "$DATA_DIR/secret_key" ]]; then
                (umask 077; head -c 48 /dev/urandom | base64 | tr -d '\n' >"$DATA_DIR/secret_key")
            fi
            SECRET_KEY="$(cat "$DATA_DIR/secret_key")"
            export SECRET_KEY
            # Label Studio reads bare USERNAME/PORT/HOST as fallbacks: keep them out of its env.
            exec env -u USERNAME -u PORT -u HOST setsid nohup "$VENV/bin/label-studio" start \
                --no-browser --internal-host "$BIND_HOST" --port "$LS_PORT" \
                </dev/null >>"$LOG_FILE" 2>&1
        ) &
        pid=$!
        started=1
        echo "$pid" >"$PID_FILE"
    fi
    local waited=0 refused=0 code="000"
    while (( waited < START_TIMEOUT )); do
        code="$(api_status)"
        if [[ "$code" == "200" ]]; then
            log "ready after ${waited}s (pid $pid)"
            echo "$URL"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            tail -n 30 "$LOG_FILE" >&2 || true
            die "server exited during start-up; see $LOG_FILE"
        fi
        if [[ "$code" == "401" || "$code" == "403" ]]; then
            refused=$((refused + 1))
            if (( refused >= 15 )); then
                (( started )) && cmd_stop
                die "the server answers but refuses LW_LS_TOKEN (HTTP $code): the admin and its token are created on the FIRST start of $DATA_DIR; use that token, or a fresh LW_LS_DATA_DIR"
            fi
        else
            refused=0
        fi
        sleep 1
        waited=$((waited + 1))
    done
    (( started )) && cmd_stop
    die "API at $URL did not answer 200 with the token within ${START_TIMEOUT}s (last HTTP $code); see $LOG_FILE"
}

cmd_stop() {
    local pid
    if ! pid="$(live_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    log "stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    local waited=0
    while kill -0 "$pid" 2>/dev/null && (( waited < STOP_TIMEOUT * 10 )); do
        sleep 0.1
        waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "still alive after ${STOP_TIMEOUT}s; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$PID_FILE"
    log "stopped"
}

cmd_status() {
    local pid
    if pid="$(live_pid)"; then
        echo "running (pid $pid, $URL, API HTTP $(api_status))"
    else
        echo "not running"
        return 3
    fi
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop; cmd_start ;;
    status) cmd_status ;;
    *) echo "usage: $0 install|start|stop|status|restart" >&2; exit 2 ;;
esac
