#!/bin/sh
# Load-generator efficiency: requests per load-generator CPU-second of perflab's open-loop
# generator against wrk's, side by side in one invocation, both loading the upstream nginx
# directly (a baseline case, no gateway). perflab's own CPU accounting (cpu.load_s) is used
# for both. wrk runs flat out (closed loop); the open loop runs at RATE.
#   RATE (default 10000 req/s), CONNECTIONS (default 50), DURATION (default 10), REPEAT (default 3)
. "$(dirname "$0")/lib.sh"
RATE=${RATE:-10000}
CONNECTIONS=${CONNECTIONS:-50}
DURATION=${DURATION:-10}
REPEAT=${REPEAT:-3}
suite="$BENCH_OUT/openloop-suite"
mkdir -p "$suite"
for kind in closed open; do
    rate=""
    [ "$kind" = open ] && rate="rate = $RATE"
    cat > "$suite/$kind.toml" <<CASE
[case]
name = "$kind"
gateway = "baseline"
upstream = 'location / { return 200 "hi\n"; }'
repeats = $REPEAT
[case.load]
kind = "$kind"
$rate
connections = $CONNECTIONS
threads = 1
duration = $DURATION
warmup = 1
CASE
done
out="$BENCH_OUT/openloop"
"$PERFLAB" suite "$suite" --cooldown-max 5 --quiet --output "$out" >/dev/null
python3 - "$(latest "$out")" <<'PY'
import json, glob, sys
rows = {}
for p in sorted(glob.glob(sys.argv[1] + "runs/*/result.json")):
    r = json.load(open(p))
    rows.setdefault(r["case"], []).append(r)
print(f"{'generator':<22} {'runs':>4} {'req/s':>10} {'load CPU s':>10} {'req per load CPU-s':>20} {'p99 ms':>8}")
eff = {}
for case, rs in sorted(rows.items()):
    req = sum(r["requests"] for r in rs)
    cpu = sum(r["cpu"]["load_s"] for r in rs)
    rps = sum(r["rps"] for r in rs) / len(rs)
    p99 = sorted(r["latency_ms"]["p99"] or 0 for r in rs)[len(rs) // 2]
    name = "wrk (closed)" if case == "closed" else "perflab-open (%.0f/s)" % rs[0]["open_loop"]["rate_asked"]
    eff[case] = req / cpu if cpu else float("nan")
    print(f"{name:<22} {len(rs):>4} {rps:>10.0f} {cpu:>10.2f} {eff[case]:>20.0f} {p99:>8.2f}")
if "open" in eff and "closed" in eff:
    print(f"open-loop / wrk requests per CPU-second: {eff['open'] / eff['closed']:.2f}")
PY
