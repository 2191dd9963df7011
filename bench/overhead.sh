#!/bin/sh
# Orchestration overhead: wall time of a one-case suite minus its load time, per run.
# Aim: under 0.5 s per run. Warm-up is off so only orchestration is counted.
#   REPEAT (default 5), DURATION (default 2)
. "$(dirname "$0")/lib.sh"
REPEAT=${REPEAT:-5}
DURATION=${DURATION:-2}
out="$BENCH_OUT/overhead"
start=$(date +%s.%N)
"$PERFLAB" suite rps --tags simple-proxy --gateway nginx --repeat "$REPEAT" --duration "$DURATION" \
    --warmup 0 --cooldown-max 0 --quiet --output "$out" >/dev/null
end=$(date +%s.%N)
dir=$(latest "$out")
python3 - "$dir" "$start" "$end" "$REPEAT" <<'PY'
import json, glob, sys
d, start, end, n = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
load = sum(json.load(open(p))["duration_s"] for p in glob.glob(d + "runs/*/result.json"))
wall = end - start
print(f"runs: {n}  wall: {wall:.2f} s  load (wrk-measured): {load:.2f} s")
print(f"orchestration overhead per run: {(wall - load) / n:.3f} s (whole invocation, incl. start-up, fingerprint, report)")
PY
