#!/bin/sh
# Starts a private Docker engine for perflab's docker driver and tests, in the background.
#
# Nothing on the project's machines starts dockerd (no systemd), and the lab must not disturb a
# system engine, so this one has its own socket, data root, exec root and pid file. It is
# idempotent: when the socket already answers it does nothing. Use it with
#   DOCKER_HOST=unix:///run/perflab-docker.sock
#
# Environment overrides: PERFLAB_DOCKER_SOCK, PERFLAB_DOCKER_DATA, PERFLAB_DOCKER_EXEC,
# PERFLAB_DOCKER_PID, PERFLAB_DOCKER_LOG, PERFLAB_DOCKER_WAIT (seconds, default 60).
set -eu

SOCK=${PERFLAB_DOCKER_SOCK:-/run/perflab-docker.sock}
DATA=${PERFLAB_DOCKER_DATA:-/var/lib/perflab-docker}
EXEC=${PERFLAB_DOCKER_EXEC:-/run/perflab-docker-exec}
PIDFILE=${PERFLAB_DOCKER_PID:-/run/perflab-docker.pid}
LOG=${PERFLAB_DOCKER_LOG:-/var/log/perflab-dockerd.log}
WAIT=${PERFLAB_DOCKER_WAIT:-60}

# True when the engine answers on the socket (curl speaks HTTP over unix sockets).
answers() {
    [ -S "$SOCK" ] && curl -sf --max-time 2 --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1
}

if answers; then
    echo "dockerd already answers on unix://$SOCK"
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
    echo "dockerd not found: install Debian's docker.io (apt-get install docker.io)" >&2
    exit 3
fi

# A pid file of a live dockerd that does not (yet) answer: wait for it rather than start another.
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "dockerd (pid $(cat "$PIDFILE")) is starting; waiting for unix://$SOCK"
else
    rm -f "$PIDFILE"
    mkdir -p "$DATA" "$EXEC" "$(dirname "$LOG")"
    setsid dockerd \
        --host "unix://$SOCK" \
        --data-root "$DATA" \
        --exec-root "$EXEC" \
        --pidfile "$PIDFILE" \
        </dev/null >>"$LOG" 2>&1 &
fi

i=0
while [ "$i" -lt "$((WAIT * 10))" ]; do
    if answers; then
        echo "dockerd answers on unix://$SOCK (log: $LOG)"
        exit 0
    fi
    sleep 0.1
    i=$((i + 1))
done
echo "dockerd did not answer on unix://$SOCK within ${WAIT}s; last lines of $LOG:" >&2
tail -n 20 "$LOG" >&2 || true
exit 1
