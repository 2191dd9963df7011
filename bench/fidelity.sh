#!/bin/sh
# Fidelity: the lab's RPS on `baseline` against plain wrk run by hand with the same options,
# interleaved (lab, hand, lab, hand …). The hand run uses the nginx config perflab itself wrote
# for the upstream, and the same CPU pinning (nginx on the last CPU, wrk on the others), so the
# only difference is perflab around it. Should be 1.00 within noise.
#   ROUNDS (default 5), DURATION (default 5)
. "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
ncpu=$(nproc)
last=$((ncpu - 1))
others=0; [ "$ncpu" -gt 2 ] && others="0-$((ncpu - 2))"
results="$BENCH_OUT/fidelity.tsv"
: > "$results"
for i in $(seq 1 "$ROUNDS"); do
    out="$BENCH_OUT/fidelity-lab-$i"
    "$PERFLAB" suite rps --tags baseline --repeat 1 --duration "$DURATION" --warmup 1 --cooldown-max 5 --quiet --output "$out" >/dev/null
    dir=$(latest "$out")
    run=$(ls -d "$dir"runs/*/ | head -n 1)
    lab_rps=$(json "$run/result.json" 'd["rps"]')
    # The hand run: perflab's own upstream config, a fresh prefix, the same port range.
    prefix=$(mktemp -d /tmp/perflab-hand-XXXXXX)
    chmod 755 "$prefix"
    mkdir -p "$prefix/tmp"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    sed -e "s#listen 127.0.0.1:[0-9]*#listen 127.0.0.1:$port#" -e "s#/tmp/[^ ;]*/upstream-[0-9]*#$prefix#g" "$run/config/upstream-nginx.conf" > "$prefix/nginx.conf"
    taskset -c "$last" nginx -p "$prefix" -c "$prefix/nginx.conf" &
    npid=$!
    for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
    taskset -c "$others" wrk -c 100 -t 2 -d 1s "http://127.0.0.1:$port/" >/dev/null
    hand=$(taskset -c "$others" wrk -c 100 -t 2 -d "${DURATION}s" --latency "http://127.0.0.1:$port/" | awk '/^Requests\/sec:/ {print $2}')
    kill -TERM "$npid"; wait "$npid" 2>/dev/null || true
    rm -rf "$prefix"
    printf '%s\t%s\t%s\n' "$i" "$lab_rps" "$hand" >> "$results"
    echo "round $i: lab $lab_rps req/s, by hand $hand req/s"
done
python3 - "$results" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
ratios = [float(l) / float(h) for _, l, h in rows]
lab = [float(l) for _, l, _ in rows]; hand = [float(h) for _, _, h in rows]
print(f"lab mean {st.mean(lab):.0f} req/s, by hand mean {st.mean(hand):.0f} req/s")
print(f"lab/hand ratio: mean {st.mean(ratios):.3f}, per round " + ", ".join(f"{r:.3f}" for r in ratios))
if len(ratios) > 1:
    print(f"ratio stdev {st.stdev(ratios):.3f}")
PY
