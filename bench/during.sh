#!/usr/bin/env bash
# Actions during load: what recording the load's time series costs, and what a reload under
# load does to the traffic (nginx, HAProxy).
#
# Method
#   Each round is one `perflab suite` invocation per gateway over a temp suite of three cases,
#   all with the same load (simple proxy, 50 connections, 2 threads):
#     a-plain      no actions: wrk as usual
#     b-recorded   one scrape of the proxy's health page at 1 s: the run records the time
#                  series (wrk builds every request in Lua, the upstream echoes a header)
#     c-reload     a reload at the middle of the load
#   Runs follow each other within a round (seconds apart), and the summary is the geometric
#   mean over rounds of recorded/plain rps with its min and max, as a ratio measured side by
#   side. For the reload it prints, per round, the traffic in the window around the reload
#   (1 s before to 1 s after) and away from it: responses/s, HTTP errors, lost requests (their
#   connection broke: wrk's socket errors), p99 latency.
#
# Usage
#   bench/during.sh
#   ROUNDS=5 DURATION=20 GATEWAYS="nginx" bench/during.sh
# Environment (all optional)
#   ROUNDS=3  DURATION=10  GATEWAYS="nginx haproxy"
#   PERFLAB=path/to/perflab (default target/release/perflab)   BENCH_OUT=DIR (keeps results)
# Needs: perflab, nginx, haproxy, wrk, python3.
. "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
GATEWAYS=${GATEWAYS:-"nginx haproxy"}
MID=$(python3 -c "print($DURATION / 2)")

for gw in $GATEWAYS; do
    suite="$BENCH_OUT/suites/$gw"
    mkdir -p "$suite"
    for c in a-plain b-recorded c-reload; do
        {
            printf '[case]\nname = "%s"\ngateway = "%s"\n' "$c" "$gw"
            printf '[case.load]\nconnections = 50\nthreads = 2\nduration = %s\n' "$DURATION"
            case $c in
            b-recorded) printf '[[case.during]]\nat = 1\naction = "scrape"\npath = "/perflab-health"\nport = "proxy"\n' ;;
            c-reload) printf '[[case.during]]\nat = %s\naction = "reload"\n' "$MID" ;;
            esac
        } > "$suite/$c.toml"
    done
    for r in $(seq 1 "$ROUNDS"); do
        out="$BENCH_OUT/out-$gw-$r"
        "$PERFLAB" suite "$suite" --repeat 1 --warmup 1 --cooldown-max 0 --plain --output "$out" \
            > /dev/null 2> "$out.log" || { cat "$out.log"; exit 1; }
    done
done

python3 - "$BENCH_OUT" "$ROUNDS" $GATEWAYS <<'PY'
import glob, json, math, sys
root, rounds, gateways = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def run(gw, r, case):
    [p] = glob.glob(f"{root}/out-{gw}-{r}/*/runs/*-{case}@{gw}-*/result.json")
    return json.load(open(p))
def ms(v):
    return "-" if v is None else f"{v:.2f}"
for gw in gateways:
    ratios = []
    print(f"== {gw}")
    for r in range(1, rounds + 1):
        plain, rec, rel = (run(gw, r, c) for c in ("a-plain", "b-recorded", "c-reload"))
        ratios.append(rec["rps"] / plain["rps"])
        d = rel["during"]
        a = d["actions"][0]
        w, o = a["window"], d["outside"]
        print(f"round {r}: plain {plain['rps']:.0f} rps, recorded {rec['rps']:.0f} rps "
              f"(ratio {ratios[-1]:.3f}); reload at {a['started_s']:.2f}s ok={a['ok']} took {a['duration_s']*1000:.1f} ms")
        print(f"   window  {w['from_s']:.1f}-{w['to_s']:.1f}s: {w['rps']:.0f} rps, errors {w['errors']}, "
              f"lost {w['lost']}, p50 {ms(w['p50_ms'])} ms, p99 {ms(w['p99_ms'])} ms, max {ms(w['max_ms'])} ms")
        print(f"   outside {o['seconds']:.1f}s: {o['rps']:.0f} rps, errors {o['errors']}, lost {o['lost']}, "
              f"p50 {ms(o['p50_ms'])} ms, p99 {ms(o['p99_ms'])} ms, max {ms(o['max_ms'])} ms; "
              f"wrk socket errors {rel['errors']}")
    g = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
    print(f"{gw}: recorded/plain rps geometric mean {g:.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}) over {rounds} rounds")
PY
echo "results: $BENCH_OUT"
