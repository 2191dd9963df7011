#!/bin/sh
# Benchmark (not a test): a long invocation. One `perflab suite` with RUNS short runs (default
# 500: simple-proxy@nginx, 1 s of load each, no warm-up, no cool-down wait) while this script
# samples perflab's own resident memory (VmRSS) and open file descriptors every INTERVAL
# seconds, with the number of runs stored so far. At the end it prints:
#   - RSS and fds: first sample after 10 runs, last sample, maximum; the least-squares slope of
#     RSS over runs (KiB per 100 runs) after the first 10 runs (start-up allocations excluded);
#   - disk use per run folder (du, KiB): min, median, max, and the results folder's total;
#   - the wall time per run.
# Growth shows as a slope well above zero or fds that rise with the runs.
#
# Environment: RUNS (default 500), INTERVAL (s between samples, default 5), DURATION (s of load
# per run, default 1), PERFLAB (the binary; default target/release/perflab if built, else
# target/debug/perflab), OUT (where the results and samples go; default a new temp dir, kept).
# The machine may be shared: the figures are about perflab's own memory, fds and disk, which
# the load on the machine does not change.
set -eu

RUNS=${RUNS:-500}
INTERVAL=${INTERVAL:-5}
DURATION=${DURATION:-1}
if [ -z "${PERFLAB:-}" ]; then
    PERFLAB=target/debug/perflab
    [ -x target/release/perflab ] && PERFLAB=target/release/perflab
fi
OUT=${OUT:-$(mktemp -d /tmp/perflab-soak.XXXXXX)}
mkdir -p "$OUT"
echo "soak: $RUNS runs of ${DURATION}s with $PERFLAB; results and samples in $OUT" >&2

"$PERFLAB" suite rps --tags simple-proxy --gateway nginx --repeat "$RUNS" \
    --duration "$DURATION" --warmup 0 --cooldown-max 0 --connections 10 --threads 1 \
    --no-pin --plain --output "$OUT/results" >"$OUT/stdout" 2>"$OUT/stderr" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
start=$(date +%s)
echo "t_s runs rss_kib fds" >"$OUT/samples.txt"
while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    runs=$(ls -d "$OUT"/results/*/runs/*/result.json 2>/dev/null | wc -l)
    [ -n "$rss" ] && echo "$(($(date +%s) - start)) $runs $rss $fds" >>"$OUT/samples.txt"
    sleep "$INTERVAL"
done
status=0
wait "$pid" || status=$?
end=$(date +%s)
runs=$(ls -d "$OUT"/results/*/runs/*/result.json 2>/dev/null | wc -l)
echo "perflab exited with status $status after $((end - start)) s; $runs runs stored" >&2

awk 'NR > 1 && $2 >= 10 {
        n++; x[n] = $2; y[n] = $3; f[n] = $4
        if ($3 > maxr) maxr = $3
        if ($4 > maxf) maxf = $4
        if (minf == "" || $4 < minf) minf = $4
     }
     END {
        if (n < 2) { print "too few samples after 10 runs"; exit }
        for (i = 1; i <= n; i++) { sx += x[i]; sy += y[i] }
        mx = sx / n; my = sy / n
        for (i = 1; i <= n; i++) { sxy += (x[i] - mx) * (y[i] - my); sxx += (x[i] - mx) ^ 2 }
        slope = sxx > 0 ? sxy / sxx : 0
        printf "RSS KiB: at run %d %d, at run %d %d, max %d; slope %.1f KiB per 100 runs (%d samples)\n",
            x[1], y[1], x[n], y[n], maxr, slope * 100, n
        printf "open fds: at run %d %d, at run %d %d, min %d, max %d\n", x[1], f[1], x[n], f[n], minf, maxf
     }' "$OUT/samples.txt"

du -sk "$OUT"/results/*/runs/* 2>/dev/null | sort -n | awk '{ v[NR] = $1 }
    END {
        if (NR == 0) { print "no run folders"; exit }
        printf "disk per run folder KiB: min %d, median %d, max %d (%d folders)\n", v[1], v[int((NR + 1) / 2)], v[NR], NR
    }'
echo "results folder total: $(du -sh "$OUT/results" | cut -f1); wall time per run: $(awk -v t=$((end - start)) -v n="$runs" 'BEGIN { if (n > 0) printf "%.2f s", t / n }')"
exit "$status"
