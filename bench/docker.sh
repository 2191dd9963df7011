#!/bin/sh
# Benchmark (not a test): what the docker driver costs compared with the local driver.
#
# Run it on a quiet machine. Each round runs `perflab suite rps --tags baseline,simple-proxy
# --gateway nginx` once per setup — local, docker with host networking, docker with a lab-owned
# bridge — in an order that rotates every round, so a slow spell of the machine hits every setup
# alike (interleaving, as perflab does for versions). It prints:
#   - docker(host)/local ratios of mean req/s and req per gateway CPU-s, for baseline and
#     simple-proxy@nginx;
#   - docker(bridge)/docker(host) ratios, the cost of the bridge;
#   - time from start to first request for each setup: the first run's result.json is written
#     the moment that run ends, so (its mtime - the run's measured window - the command's start)
#     is when wrk started, within the few tens of ms the run's bookkeeping takes.
#
# Environment: DURATION (s of load per run, default 5), REPEAT (rounds, default 3), WARMUP
# (default 1), COOLDOWN (longest quiet-machine wait, default 10), PERFLAB (the binary, default
# target/release/perflab if built, else target/debug/perflab), DOCKER_HOST (default unix:///run/perflab-docker.sock),
# OUT (results root, default a new temp dir, kept). The lab image must exist: `perflab image build`.
set -eu

DURATION=${DURATION:-5}
REPEAT=${REPEAT:-3}
WARMUP=${WARMUP:-1}
COOLDOWN=${COOLDOWN:-10}
# A release build when there is one: a debug build hashes the tools it fingerprints (terraform,
# docker: ~100 MB each on the local host, not in the lab image) slowly, which inflates the local
# driver's start-up by tens of seconds.
if [ -z "${PERFLAB:-}" ]; then
    PERFLAB=target/debug/perflab
    [ -x target/release/perflab ] && PERFLAB=target/release/perflab
fi
DOCKER_HOST=${DOCKER_HOST:-unix:///run/perflab-docker.sock}
export DOCKER_HOST
OUT=${OUT:-$(mktemp -d /tmp/perflab-bench-docker.XXXXXX)}

if [ ! -x "$PERFLAB" ]; then
    echo "$PERFLAB not found: run cargo build (or set PERFLAB)" >&2
    exit 2
fi
command -v python3 >/dev/null || { echo "python3 is needed to summarise" >&2; exit 2; }

SETUPS="local docker-host docker-bridge"

run_setup() { # setup round
    setup=$1
    round=$2
    case $setup in
        local) args="--driver local" ;;
        docker-host) args="--driver docker --driver-opt network=host" ;;
        docker-bridge) args="--driver docker --driver-opt network=bridge" ;;
    esac
    dir="$OUT/$setup/r$round"
    mkdir -p "$dir"
    start=$(python3 -c 'import time; print(time.time())')
    # shellcheck disable=SC2086 # $args is a fixed word list
    if ! "$PERFLAB" suite rps --tags baseline,simple-proxy --gateway nginx $args \
        --duration "$DURATION" --repeat 1 --warmup "$WARMUP" --cooldown-max "$COOLDOWN" \
        --plain --output "$dir" >"$dir/perflab.log" 2>&1; then
        echo "perflab failed for $setup (round $round); see $dir/perflab.log:" >&2
        tail -n 5 "$dir/perflab.log" >&2
        exit 1
    fi
    echo "$start" >"$dir/start"
    end=$(python3 -c 'import time; print(time.time())')
    printf '  %-14s round %s: %.1f s\n' "$setup" "$round" "$(python3 -c "print($end - $start)")"
}

echo "perflab docker benchmark: duration ${DURATION}s, $REPEAT round(s), results in $OUT"
round=1
while [ "$round" -le "$REPEAT" ]; do
    # Rotate the order: round 1 local, host, bridge; round 2 host, bridge, local; …
    order=$(echo $SETUPS | tr ' ' '\n' | awk -v r="$round" '{a[NR]=$0} END {for (i=0;i<NR;i++) print a[(i+r-1)%NR+1]}')
    for s in $order; do
        run_setup "$s" "$round"
    done
    round=$((round + 1))
done

python3 - "$OUT" $SETUPS <<'EOF'
import glob, json, os, statistics, sys

out, setups = sys.argv[1], sys.argv[2:]
rps, eff, first = {}, {}, {}
for s in setups:
    for rdir in sorted(glob.glob(os.path.join(out, s, "r*"))):
        start = float(open(os.path.join(rdir, "start")).read())
        results = sorted(glob.glob(os.path.join(rdir, "*", "runs", "*", "result.json")))
        for i, f in enumerate(results):
            r = json.load(open(f))
            rps.setdefault((s, r["case"]), []).append(r["rps"])
            if r.get("rps_per_gateway_cpu_s"):
                eff.setdefault((s, r["case"]), []).append(r["rps_per_gateway_cpu_s"])
            if i == 0:
                t = os.path.getmtime(f) - r["cpu"]["window_s"] - start
                first.setdefault(s, []).append(t)

def mean(d, k):
    v = d.get(k)
    return statistics.mean(v) if v else None

def ratio(d, a, b, case):
    x, y = mean(d, (a, case)), mean(d, (b, case))
    return f"{x / y:.3f}" if x and y else "-"

def fmt(x, spec):
    return format(x, spec) if x is not None else format("-", ">" + spec.rstrip("f").split(".")[0])

cases = sorted({c for (_, c) in rps})
print()
print(f"{'case':<22}{'setup':<15}{'n':>3}{'req/s':>11}{'req/gw-CPU-s':>14}")
for c in cases:
    for s in setups:
        n = len(rps.get((s, c), []))
        print(f"{c:<22}{s:<15}{n:>3}{fmt(mean(rps, (s, c)), '11.0f')}{fmt(mean(eff, (s, c)), '14.0f')}")
print()
print(f"{'ratio':<34}{'case':<22}{'req/s':>8}{'req/gw-CPU-s':>14}")
for c in cases:
    print(f"{'docker(host) / local':<34}{c:<22}{ratio(rps, 'docker-host', 'local', c):>8}{ratio(eff, 'docker-host', 'local', c):>14}")
for c in cases:
    print(f"{'docker(bridge) / docker(host)':<34}{c:<22}{ratio(rps, 'docker-bridge', 'docker-host', c):>8}{ratio(eff, 'docker-bridge', 'docker-host', c):>14}")
print()
print(f"{'setup':<15}{'start to first request, s (median, min..max)':>46}")
for s in setups:
    v = first.get(s, [])
    if v:
        print(f"{s:<15}{statistics.median(v):>20.2f}   ({min(v):.2f}..{max(v):.2f})")
EOF
