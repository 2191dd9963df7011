#!/usr/bin/env bash
# Kong measured like Kong did: Kong's rps scenario (one service, one route, 100 connections)
# against a Kong beside nginx and HAProxy on the same case, and one `compare` of two Kong
# configurations.
#
# Method
#   Part 1, Kong beside nginx and HAProxy. Each round runs `suites/rps` case `simple-proxy`
#   (one route to the same nginx upstream, wrk -c100 -t2, the lab's default worker count)
#   once per gateway, as separate `perflab suite … --gateway G --repeat 1` invocations (a fresh
#   lab each: upstream, gateway, wrk). Kong runs in traditional mode with its own PostgreSQL,
#   as Kong's framework did. The gateway order rotates from round to round, and within a round
#   the ratios Kong/nginx and Kong/HAProxy are taken for raw `rps` and for
#   `rps_per_gateway_cpu_s` (throughput per gateway CPU-second, steadier on a shared machine);
#   the summary is the geometric mean of the per-round ratios with their min and max.
#
#   Part 2, two Kong configurations (needs KONG_SRC, a Kong source tree of the installed Kong,
#   e.g. the one it was built from). perflab's `git:` versions run a Kong source tree's Lua on
#   top of the installed Kong (docs/kong.md), so the script makes a throw-away git repository
#   of KONG_SRC with two tags: `A` the tree as is, `B` the same with
#   `upstream_keepalive_pool_size = 0` in kong/templates/kong_defaults.lua (no keepalive to the
#   upstream: a new TCP connection per proxied request — a change with a known direction).
#   Then `perflab compare git:A git:B` (the multiplexed design: both Kongs up at once, bursts
#   in balanced blocks, restarts per block) on the same case in DB-less mode (restarts in ~3 s
#   instead of ~13 s with PostgreSQL), with the budget BUDGET.
#
# Usage
#   PERFLAB_KONG_PREFIX=/opt/kong-3.9.3 bench/kong.sh
#   PERFLAB_KONG_PREFIX=/opt/kong-3.9.3 KONG_SRC=~/src/kong ROUNDS=5 bench/kong.sh
# Environment (all optional)
#   ROUNDS=3  DURATION=10  GATEWAYS="nginx haproxy kong"  BUDGET=3m
#   KONG_SRC=DIR              a Kong source tree (part 2 is skipped without it)
#   COMPARE_ARGS="…"          extra flags for the compare (e.g. --include-flagged on a shared
#                             machine, where every burst is flagged noisy)
#   PERFLAB=path/to/perflab   (default: target/release/perflab, built if missing)
#   BENCH_OUT=DIR             keep the results folders there
# Needs: perflab, nginx, HAProxy, wrk, PostgreSQL, Kong (PERFLAB_KONG_PREFIX or kong on PATH),
# git, jq, python3.
. "$(dirname "$0")/lib.sh"
set -o pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
GATEWAYS=${GATEWAYS:-"nginx haproxy kong"}
BUDGET=${BUDGET:-3m}
COMPARE_ARGS=${COMPARE_ARGS:-}
for t in jq git python3; do
    command -v "$t" >/dev/null || { echo "missing: $t" >&2; exit 3; }
done
# Two Kongs at once must not both take Kong's default Admin GUI and status ports (8002, 8445,
# 8007); perflab listens on its own ports for everything else.
export KONG_ADMIN_GUI_LISTEN=off KONG_STATUS_LISTEN=off

data=$BENCH_OUT/kong-rps.tsv
: >"$data"

# run ROUND GATEWAY: one lab; appends "round gateway rps rps_per_gateway_cpu_s p99_ms errors".
run() {
    local round=$1 gw=$2 out=$BENCH_OUT/rps/r$1-$2
    "$PERFLAB" suite rps --tags simple-proxy --gateway "$gw" --duration "$DURATION" --repeat 1 \
        --quiet --output "$out" >/dev/null 2>"$out.err" || {
        echo "perflab failed (round $round, $gw):" >&2; cat "$out.err" >&2; exit 4; }
    for f in "$out"/*/runs/*/result.json; do
        jq -r --arg r "$round" --arg g "$gw" \
            '[$r, $g, .rps, (.rps_per_gateway_cpu_s // "nan"), .latency_ms.p99,
              (.errors | to_entries | map(.value | numbers) | add // 0)] | @tsv' "$f"
    done >>"$data"
}

read -r -a gws <<<"$GATEWAYS"
mkdir -p "$BENCH_OUT/rps"
echo "Kong's rps scenario (simple-proxy, 100 connections): ${gws[*]}, ${DURATION}s runs, $ROUNDS rounds"
echo "perflab: $PERFLAB   kong: ${PERFLAB_KONG_PREFIX:-kong on PATH}"
for ((r = 1; r <= ROUNDS; r++)); do
    order=()
    for ((i = 0; i < ${#gws[@]}; i++)); do order+=("${gws[$(((i + r - 1) % ${#gws[@]}))]}"); done
    for g in "${order[@]}"; do run "$r" "$g"; done
    echo "round $r ($(IFS=,; echo "${order[*]}")): $(awk -v r="$r" '$1 == r { printf "%s %.0f rps  ", $2, $3 }' "$data")"
done

python3 - "$data" <<'EOF'
import collections, math, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines() if l]
by = collections.defaultdict(dict)  # round -> gateway -> (rps, per_cpu, p99, errors)
for r, g, rps, per, p99, err in rows:
    by[r][g] = (float(rps), float(per), float(p99), float(err))
gws = list(dict.fromkeys(g for _, g, *_ in rows))
def gm(xs):
    xs = [x for x in xs if x > 0 and not math.isnan(x)]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")
print()
print(f"{'gateway':<9} {'rps':>9} {'rps/gw-CPU-s':>13} {'p99 ms':>8} {'errors':>7}   (geometric means over rounds)")
for g in gws:
    v = [by[r][g] for r in by if g in by[r]]
    print(f"{g:<9} {gm([x[0] for x in v]):>9.0f} {gm([x[1] for x in v]):>13.0f} "
          f"{gm([x[2] for x in v]):>8.1f} {sum(x[3] for x in v):>7.0f}")
if "kong" in gws:
    print()
    print(f"{'ratio':<15} {'metric':<22} {'geomean':>8} {'min':>7} {'max':>7}")
    for base in [g for g in gws if g != "kong"]:
        for k, name in [(0, "rps"), (1, "rps_per_gateway_cpu_s")]:
            rs = [by[r]["kong"][k] / by[r][base][k] for r in by
                  if "kong" in by[r] and base in by[r] and by[r][base][k] > 0]
            if rs:
                print(f"kong/{base:<10} {name:<22} {gm(rs):>8.3f} {min(rs):>7.3f} {max(rs):>7.3f}")
EOF

if [[ -z "${KONG_SRC:-}" ]]; then
    echo
    echo "part 2 (compare of two Kong configurations) skipped: set KONG_SRC to a Kong source tree"
    exit 0
fi
[[ -f "$KONG_SRC/kong/templates/kong_defaults.lua" ]] || {
    echo "KONG_SRC=$KONG_SRC is not a Kong source tree (no kong/templates/kong_defaults.lua)" >&2; exit 2; }
repo=$BENCH_OUT/kong-configs
rm -rf "$repo"
mkdir -p "$repo"
cp -a "$KONG_SRC/." "$repo/"
rm -rf "$repo/.git"
git_=(git -C "$repo" -c user.name=perflab-bench -c user.email=bench@example.invalid -c commit.gpgsign=false)
"${git_[@]}" init -q
"${git_[@]}" add -A
"${git_[@]}" commit -qm "A: Kong as installed"
"${git_[@]}" tag A
sed -i 's/^upstream_keepalive_pool_size = .*/upstream_keepalive_pool_size = 0/' \
    "$repo/kong/templates/kong_defaults.lua"
grep -q '^upstream_keepalive_pool_size = 0$' "$repo/kong/templates/kong_defaults.lua"
"${git_[@]}" commit -qam "B: no upstream keepalive"
"${git_[@]}" tag B

# The rps case in DB-less mode (same upstream, same load).
suite=$BENCH_OUT/kong-dbless
mkdir -p "$suite"
{ cat "$ROOT/suites/rps/simple-proxy.toml"; printf '\n[case.gateway_settings]\nmode = "dbless"\n'; } \
    >"$suite/simple-proxy.toml"
echo
echo "compare git:A (Kong as installed) git:B (upstream_keepalive_pool_size = 0), DB-less, budget $BUDGET"
# shellcheck disable=SC2086  # COMPARE_ARGS is a list of flags
"$PERFLAB" compare git:A git:B --repo "$repo" --suite "$suite" --gateway kong --budget "$BUDGET" \
    --plain --output "$BENCH_OUT/compare" $COMPARE_ARGS
echo "results: $BENCH_OUT"
