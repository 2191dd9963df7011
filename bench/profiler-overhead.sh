#!/usr/bin/env bash
# Profiler overhead: what attaching `perf record` costs the gateway, in fp and dwarf modes.
#
# Method
#   Each round runs the same case three times, as three separate `perflab suite` invocations
#   (a fresh lab each: upstream, gateway, wrk), and the order rotates from round to round so no
#   mode always goes first or last:
#     none   suites/rps/simple-proxy.toml as is (no profiler)
#     fp     the same case file copied into a temp suite with `profile = true`, --call-graph fp
#     dwarf  the same copy, --call-graph dwarf
#   A profiled run attaches perf after the warm-up and before wrk starts, and perf script /
#   folding happen after wrk has finished, so only perf's sampling and recording overlap the
#   measured window. Within a round the ratio profiled/none is taken for
#     rps                     raw throughput: includes perf's own CPU use, which competes with
#                             nginx and wrk for the machine's cores (the cost a user sees)
#     rps_per_gateway_cpu_s   throughput per gateway CPU-second: the in-process cost (sample
#                             interrupts, dwarf's 8 KiB user-stack copy per sample are charged
#                             to the gateway), insensitive to how busy the rest of the machine is
#   and the summary is the geometric mean of the per-round ratios with their min and max.
#   Pairing within a round (minutes apart at most) and rotating the order is what makes the
#   ratio meaningful on a shared machine; one round's ratio alone is not.
#
#   Why not `perflab compare current current --flamegraph`: it adds one profiled run per version
#   after all measured repeats, so profiled and unprofiled runs are never interleaved and there
#   is only one profiled run per mode.
#
# Usage
#   bench/profiler-overhead.sh                 # defaults below
#   DURATION=10 ROUNDS=5 bench/profiler-overhead.sh
# Environment (all optional)
#   DURATION=5  ROUNDS=3  MODES="fp dwarf"  GATEWAY=nginx  PROFILE_HZ=99
#   PERFLAB=path/to/perflab    (default: target/release/perflab, target/debug/perflab, PATH)
#   PERFLAB_ARGS="--cooldown-max 0 --warmup 0"   extra flags for every invocation
#   KEEP=1      keep the results folders (printed at the end)
# Needs: perflab, nginx, wrk, perf (perf_event_paranoid <= 2 or root), jq, awk.
set -euo pipefail

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
MODES=${MODES:-"fp dwarf"}
GATEWAY=${GATEWAY:-nginx}
PROFILE_HZ=${PROFILE_HZ:-99}
PERFLAB_ARGS=${PERFLAB_ARGS:-}

repo=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${PERFLAB:-}" ]]; then
  for p in "$repo/target/release/perflab" "$repo/target/debug/perflab" "$(command -v perflab || true)"; do
    if [[ -n "$p" && -x "$p" ]]; then PERFLAB=$p; break; fi
  done
fi
[[ -n "${PERFLAB:-}" ]] || { echo "no perflab binary: cargo build, or set PERFLAB" >&2; exit 3; }
for t in jq awk perf; do
  command -v "$t" >/dev/null || { echo "missing: $t" >&2; exit 3; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/perflab-overhead.XXXXXX")
if [[ "${KEEP:-0}" != 1 ]]; then trap 'rm -rf "$work"' EXIT; fi
mkdir -p "$work/tmp" "$work/cache" "$work/out" "$work/profiled"
export TMPDIR=$work/tmp PERFLAB_CACHE_DIR=$work/cache

# The profiled copy of the case: identical but for `profile = true`.
case_file=$repo/suites/rps/simple-proxy.toml
awk '{ print } /^\[case\]$/ && !done { print "profile = true"; done = 1 }' "$case_file" \
  >"$work/profiled/simple-proxy.toml"
grep -q '^profile = true$' "$work/profiled/simple-proxy.toml"

data=$work/data.tsv
: >"$data"

# run ROUND MODE: one invocation, appends "round mode rps rps_per_gateway_cpu_s samples" rows.
run() {
  local round=$1 mode=$2 suite=rps cg=fp out
  if [[ $mode != none ]]; then suite=$work/profiled; cg=$mode; fi
  out=$work/out/r$round-$mode
  # shellcheck disable=SC2086  # PERFLAB_ARGS is a list of flags
  "$PERFLAB" suite "$suite" --tags simple-proxy --gateway "$GATEWAY" --duration "$DURATION" \
    --repeat 1 --call-graph "$cg" --profile-hz "$PROFILE_HZ" --quiet --output "$out" \
    $PERFLAB_ARGS >/dev/null 2>"$work/r$round-$mode.err" || {
    echo "perflab failed (round $round, $mode):" >&2; cat "$work/r$round-$mode.err" >&2; exit 4; }
  for f in "$out"/*/runs/*/result.json; do
    jq -r --arg r "$round" --arg m "$mode" \
      '[$r, $m, .rps, (.rps_per_gateway_cpu_s // "nan"), (.profile.samples // 0),
        (if .flags.profiled == ($m != "none") then "ok" else "WRONG" end)] | @tsv' "$f"
  done >>"$data"
}

read -r -a modes <<<"none $MODES"
echo "profiler overhead: $GATEWAY simple-proxy, ${DURATION}s runs, $ROUNDS rounds, modes: ${modes[*]}, $PROFILE_HZ Hz"
echo "perflab: $PERFLAB"
for ((r = 1; r <= ROUNDS; r++)); do
  n=${#modes[@]}
  order=()
  for ((i = 0; i < n; i++)); do order+=("${modes[$(((i + r - 1) % n))]}"); done
  for m in "${order[@]}"; do run "$r" "$m"; done
  echo "round $r ($(IFS=,; echo "${order[*]}")): $(awk -v r="$r" '$1 == r { printf "%s %.0f rps  ", $2, $3 }' "$data")"
done

if grep -q WRONG "$data"; then
  echo "a run's profiled flag does not match its mode:" >&2; cat "$data" >&2; exit 4
fi

echo
printf '%-6s %-22s %10s %10s %10s %8s\n' mode metric "geomean" "min" "max" samples
awk -v modes="$MODES" '
  { rps[$1, $2] = $3; per[$1, $2] = $4; smp[$1, $2] = $5; rounds[$1] = 1 }
  END {
    n = split(modes, ms, " ")
    for (i = 1; i <= n; i++) {
      m = ms[i]
      split("rps rps_per_gateway_cpu_s", metrics, " ")
      for (k = 1; k <= 2; k++) {
        s = 0; c = 0; lo = 1e9; hi = 0; ns = 0
        for (r in rounds) {
          a = (k == 1) ? rps[r, "none"] : per[r, "none"]
          b = (k == 1) ? rps[r, m] : per[r, m]
          if (a + 0 > 0 && b + 0 > 0) {
            x = b / a; s += log(x); c++
            if (x < lo) lo = x
            if (x > hi) hi = x
          }
          ns += smp[r, m]
        }
        if (c > 0)
          printf "%-6s %-22s %10.3f %10.3f %10.3f %8.0f\n", m, metrics[k], exp(s / c), lo, hi, ns / length(rounds)
        else
          printf "%-6s %-22s %10s %10s %10s %8s\n", m, metrics[k], "-", "-", "-", "-"
      }
    }
  }' "$data"
echo "(ratio = profiled / unprofiled within a round; 1.000 = no overhead; samples = mean per profiled run)"
if [[ "${KEEP:-0}" == 1 ]]; then echo "results: $work/out  raw: $data"; fi
