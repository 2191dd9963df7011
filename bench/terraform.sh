#!/bin/sh
# Benchmark of the terraform driver on its netns provider (not a test: it prints numbers).
#
#   1. time from `perflab suite` to the first request (wrk appearing in the worker namespace),
#      with a fresh apply and with a reused lab;
#   2. per-run overhead: wall time of a one-case suite minus its load time, per run, for the
#      terraform driver (SSH) and the local driver;
#   3. RPS of the `baseline` case on the netns lab vs the local driver, runs interleaved
#      (local, netns, local, netns, ...), as per-pair ratios netns/local.
#
# Needs root, terraform, sshd, ip, nginx, wrk, curl, python3 and a built perflab.
# Settings (environment): DURATION (5), REPEAT (3), COOLDOWN_MAX (2), LAB (tfbench),
# OCTET (236: the lab's 10.N.0.0/16), PERFLAB (target/debug/perflab), KEEP=1 keeps the lab.
# The lab is destroyed at the end (and at the start, for the fresh apply).
set -eu

DURATION=${DURATION:-5}
REPEAT=${REPEAT:-3}
COOLDOWN_MAX=${COOLDOWN_MAX:-2}
LAB=${LAB:-tfbench}
OCTET=${OCTET:-236}
PERFLAB=${PERFLAB:-target/debug/perflab}
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1

[ -x "$PERFLAB" ] || { echo "no perflab at $PERFLAB: cargo build first" >&2; exit 1; }
WORK=$(mktemp -d /tmp/perflab-tfbench.XXXXXX)
STATE=$WORK/state
# A private cache dir: `perflab teardown` also removes perflab's git checkouts there.
export XDG_CACHE_HOME="$WORK/cache"

TF_OPTS="--driver-opt provider=netns --driver-opt lab=$LAB --driver-opt var.net_octet=$OCTET --driver-opt state-dir=$STATE"
COMMON="--duration $DURATION --warmup 0 --cooldown-max $COOLDOWN_MAX --quiet"

now() { date +%s.%N; }
calc() { python3 -c "print($1)"; }

destroy() {
    # shellcheck disable=SC2086
    "$PERFLAB" teardown --driver terraform --full $TF_OPTS >/dev/null 2>&1 || true
}
finish() {
    [ "${KEEP:-0}" = 1 ] || destroy
    rm -rf "$WORK"
}
trap finish EXIT INT TERM

# Seconds from now until a wrk process runs in the lab's worker namespace (polled every 20 ms).
first_request() { # start time, perflab pid
    ns="perflab-$LAB-worker"
    while kill -0 "$2" 2>/dev/null; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do
            if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = wrk ]; then
                calc "$(now) - $1"
                return 0
            fi
        done
        sleep 0.02
    done
    echo "nan"
}

# Runs `perflab suite rps --tags baseline` and prints "wall_s rps" (rps averaged over runs).
suite() { # driver, repeat, output dir, extra args...
    driver=$1 repeat=$2 out=$3
    shift 3
    t0=$(now)
    # shellcheck disable=SC2086
    "$PERFLAB" suite rps --tags baseline --driver "$driver" --repeat "$repeat" $COMMON \
        --output "$out" "$@" >/dev/null 2>"$out.err" || { cat "$out.err" >&2; exit 1; }
    wall=$(calc "$(now) - $t0")
    rps=$(python3 - "$out" <<'PY'
import glob, json, sys
rs = [json.load(open(p))["rps"] for p in glob.glob(sys.argv[1] + "/*/runs/*/result.json")]
print(sum(rs) / len(rs) if rs else float("nan"))
PY
)
    echo "$wall $rps"
}

echo "perflab terraform benchmark: duration ${DURATION}s, repeat $REPEAT, lab $LAB (10.$OCTET.0.0/16)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"

# 1. Time to first request: fresh apply, then reused.
destroy
for kind in fresh reused; do
    out=$WORK/first-$kind
    t0=$(now)
    # shellcheck disable=SC2086
    "$PERFLAB" suite rps --tags baseline --driver terraform --repeat 1 $COMMON $TF_OPTS \
        --output "$out" >/dev/null 2>"$out.err" &
    pid=$!
    t=$(first_request "$t0" "$pid")
    wait "$pid" || { cat "$out.err" >&2; exit 1; }
    infra=$(python3 -c "import glob,json; print(json.load(open(glob.glob('$out/*/manifest.json')[0]))['driver_info']['infrastructure'])")
    printf 'time to first request, %-6s lab: %6.2f s (infrastructure: %s)\n' "$kind" "$t" "$infra"
done

# 2. Per-run overhead (wall - load) / runs, one case with REPEAT runs.
for driver in local terraform; do
    opts=""
    [ "$driver" = terraform ] && opts=$TF_OPTS
    # shellcheck disable=SC2086
    set -- $(suite "$driver" "$REPEAT" "$WORK/overhead-$driver" $opts)
    per=$(calc "($1 - $REPEAT * $DURATION) / $REPEAT")
    printf 'per-run overhead, %-9s: %6.2f s (wall %.1f s for %s runs of %s s)\n' "$driver" "$per" "$1" "$REPEAT" "$DURATION"
done

# 3. RPS netns vs local, interleaved pairs.
ratios=""
i=1
while [ "$i" -le "$REPEAT" ]; do
    set -- $(suite local 1 "$WORK/pair$i-local")
    l=$2
    # shellcheck disable=SC2086
    set -- $(suite terraform 1 "$WORK/pair$i-netns" $TF_OPTS)
    n=$2
    r=$(calc "$n / $l")
    printf 'pair %d: local %.0f req/s, netns %.0f req/s, ratio %.3f\n' "$i" "$l" "$n" "$r"
    ratios="$ratios $r"
    i=$((i + 1))
done
python3 - $ratios <<'PY'
import statistics, sys
r = [float(x) for x in sys.argv[1:]]
m = statistics.mean(r)
cv = 100 * statistics.stdev(r) / m if len(r) > 1 else float("nan")
print(f"baseline RPS netns/local: mean ratio {m:.3f} over {len(r)} pair(s), CV {cv:.1f}%")
PY
