#!/usr/bin/env bash
# Records real wrk 4.x outputs into tests/fixtures/wrk/ as fixtures for src/role/load/wrk_parse.rs.
#
# A private nginx (its own prefix in a temporary directory, `daemon off;`, a kernel-chosen loopback
# port) serves the situations the parser must handle: a small 200, a 64 KiB body, 404s, slow
# responses (limit_rate) that exceed `--timeout 1s`, and connections closed without a response
# (`return 444`). A second nginx is stopped in the middle of a run to cause write/read errors,
# and a low fd limit (`ulimit -n`) makes wrk's own socket() fail, which it counts as connect
# errors. Every wrk run lasts 1-2 s. All traffic goes to 127.0.0.1. Processes this script starts
# are stopped by pid (trap on exit); nothing is killed by name.
#
# Usage: scripts/record-wrk-fixtures.sh [OUTPUT_DIR]   (default: tests/fixtures/wrk)
# Writes one .txt per case (wrk's stdout and stderr together) and README.md listing the commands.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo/tests/fixtures/wrk}
lua=$repo/tests/fixtures/wrk/done-hook.lua
mkdir -p "$out"

for tool in wrk nginx python3; do
  command -v "$tool" >/dev/null || { echo "record-wrk-fixtures: $tool not found" >&2; exit 3; }
done

work=$(mktemp -d /tmp/perflab-wrk-fixtures.XXXXXX)
# nginx workers run as an unprivileged user: they must be able to read the served files.
chmod 755 "$work"
started=()
cleanup() {
  local p
  for p in "${started[@]}"; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# A loopback port the kernel reports free right now (bind to port 0, read it back, release it).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Writes an nginx config for prefix $1 listening on port $2.
write_nginx_conf() {
  local prefix=$1 port=$2
  mkdir -p "$prefix/logs" "$prefix/tmp" "$prefix/html"
  head -c 65536 /dev/zero | tr '\0' 'a' >"$prefix/html/big.bin"
  # 40000 bytes at 16 KiB/s: the first second's share goes at once, the rest takes > 1 s.
  head -c 40000 /dev/zero | tr '\0' 'b' >"$prefix/html/slow.bin"
  cat >"$prefix/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $prefix/tmp;
  proxy_temp_path $prefix/tmp;
  fastcgi_temp_path $prefix/tmp;
  uwsgi_temp_path $prefix/tmp;
  scgi_temp_path $prefix/tmp;
  # About half of the connections (by client port) are rate limited, the others are not.
  split_clients "\${remote_port}" \$slow_rate { 50% 16k; * 0; }
  server {
    listen 127.0.0.1:$port;
    root $prefix/html;
    location = / { return 200 "ok\n"; }
    location = /big { try_files /big.bin =500; }
    location = /missing { return 404; }
    location = /slow { limit_rate 16k; try_files /slow.bin =500; }
    location = /mixed { limit_rate \$slow_rate; try_files /slow.bin =500; }
    location = /close { return 444; }
  }
}
CONF
}

# Starts nginx for prefix $1 in the background; sets NGINX_PID. Waits until the port answers.
start_nginx() {
  local prefix=$1 port=$2 i
  nginx -p "$prefix" -c "$prefix/nginx.conf" &
  NGINX_PID=$!
  started+=("$NGINX_PID")
  for i in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "record-wrk-fixtures: nginx did not come up on port $port; its log:" >&2
  cat "$prefix/logs/error.log" >&2
  exit 4
}

stop_pid() {
  local p=$1 keep=() q
  kill "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  for q in "${started[@]}"; do [[ $q == "$p" ]] || keep+=("$q"); done
  started=("${keep[@]}")
}

readme_rows=()
# record NAME DESCRIPTION -- COMMAND...: runs the command, writes stdout+stderr to NAME.txt.
record() {
  local name=$1 desc=$2 rc=0
  shift 3
  "$@" >"$out/$name.txt" 2>&1 || rc=$?
  local shown="" arg
  for arg in "$@"; do
    if [[ $arg == *" "* ]]; then shown+="'$arg' "; else shown+="$arg "; fi
  done
  readme_rows+=("| \`$name.txt\` | $desc | \`${shown% }\` | $rc |")
  echo "recorded $name.txt (exit $rc)" >&2
}

# Fails unless file $1 matches extended regex $2 (the situation really happened).
require() {
  grep -Eq "$2" "$out/$1.txt" || { echo "record-wrk-fixtures: $1.txt lacks /$2/:" >&2; cat "$out/$1.txt" >&2; return 1; }
}

# Fails if file $1 matches extended regex $2 (something unintended happened, e.g. error pages).
forbid() {
  if grep -Eq "$2" "$out/$1.txt"; then echo "record-wrk-fixtures: $1.txt has /$2/:" >&2; cat "$out/$1.txt" >&2; return 1; fi
}

port=$(free_port)
write_nginx_conf "$work/a" "$port"
start_nginx "$work/a" "$port"
base=http://127.0.0.1:$port

record plain "small 200 responses, no --latency" -- \
  wrk -t2 -c10 -d2s "$base/"
require plain '^Requests/sec:'
forbid plain 'Non-2xx|Socket errors'
record latency "small 200 responses with --latency" -- \
  wrk -t2 -c10 -d2s --latency "$base/"
require latency 'Latency Distribution'
record large-body "64 KiB bodies: MB read, MB/s" -- \
  wrk -t2 -c10 -d2s --latency "$base/big"
require large-body '[MG]B read'
forbid large-body 'Non-2xx|Socket errors'
record non-2xx "404 for every request" -- \
  wrk -t1 -c4 -d1s "$base/missing"
require non-2xx 'Non-2xx or 3xx responses: [1-9]'
# Whether a connection is slow depends on its client port, so retry the rare all-fast draw.
for attempt in 1 2 3; do
  record timeouts-some "about half the connections slower than --timeout 1s" -- \
    wrk -t1 -c8 -d2s --timeout 1s --latency "$base/mixed"
  forbid timeouts-some 'Non-2xx'
  if require timeouts-some 'timeout [1-9]' 2>/dev/null && ! grep -q nan "$out/timeouts-some.txt"; then break; fi
  [[ $attempt -lt 3 ]] || { echo "record-wrk-fixtures: no partial timeouts after 3 attempts" >&2; exit 4; }
  unset 'readme_rows[-1]'
done
record timeouts-all "every response slower than --timeout 1s (-nan%)" -- \
  wrk -t1 -c4 -d2s --timeout 1s "$base/slow"
require timeouts-all 'nan%'
require timeouts-all 'timeout [1-9]'
forbid timeouts-all 'Non-2xx'
record socket-errors-closed "server closes without answering (read errors); fd limit 24 < 40 connections (connect errors)" -- \
  bash -c "ulimit -n 24; exec wrk -t1 -c40 -d1s $base/close"
require socket-errors-closed 'connect [1-9][0-9]*, read [1-9]'
record done-hook "Lua done() prints wrk-like lines and JSON after the summary" -- \
  wrk -t2 -c10 -d1s --latency -s "$lua" "$base/"
require done-hook '^\{"requests"'
forbid done-hook 'Socket errors'

# A second nginx that is stopped 0.8 s into a 2 s run: the open connections fail.
port2=$(free_port)
write_nginx_conf "$work/b" "$port2"
start_nginx "$work/b" "$port2"
victim=$NGINX_PID
( sleep 0.8; kill "$victim" ) &
killer=$!
record socket-errors-server-killed "nginx stopped 0.8 s into the run (read/write errors)" -- \
  wrk -t2 -c8 -d2s "http://127.0.0.1:$port2/"
wait "$killer" || true
stop_pid "$victim"
require socket-errors-server-killed 'Socket errors: .*(read|write) [1-9]'

# Nothing listens on this port: wrk refuses to start.
closed=$(free_port)
record connect-refused "nothing listens on the port (wrk exits 1)" -- \
  wrk -t1 -c1 -d1s "http://127.0.0.1:$closed/"
require connect-refused '^unable to connect to 127\.0\.0\.1:[0-9]+ Connection refused'

{
  echo "# wrk output fixtures"
  echo
  echo "Real outputs of \`$(wrk -v 2>&1 | head -n1 | sed 's/ *Copyright.*//')\` against a private nginx"
  echo "($(nginx -v 2>&1 | sed 's/^nginx version: //')) on 127.0.0.1, recorded on $(date -u +%Y-%m-%d) by"
  echo "\`scripts/record-wrk-fixtures.sh\` (see its header for the nginx locations). Each \`.txt\` is wrk's"
  echo "stdout and stderr together. Ports were chosen by the kernel at recording time. The tests in"
  echo "\`src/role/load/wrk_parse.rs\` assert the numbers that appear in these files: after re-recording,"
  echo "update those assertions from the new files."
  echo
  echo "nginx locations: \`/\` returns \`ok\\n\`; \`/big\` a 64 KiB file; \`/missing\` 404; \`/slow\` a 40000-byte file"
  echo "at \`limit_rate 16k\`; \`/mixed\` the same file rate limited on about half of the connections"
  echo "(\`split_clients\` on the client port); \`/close\` \`return 444\` (close without a response)."
  echo
  echo "| file | situation | command | wrk exit |"
  echo "|---|---|---|---|"
  printf '%s\n' "${readme_rows[@]}" | sed "s|$repo/||g"
  echo
  echo "\`done-hook.lua\` is the script used for \`done-hook.txt\`."
} >"$out/README.md"
echo "fixtures written to $out" >&2
