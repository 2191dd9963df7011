#!/bin/sh
# Noise: CV of raw RPS against CV of requests per gateway CPU-second over REPEAT repeats of
# simple-proxy on nginx.
#   REPEAT (default 10), DURATION (default 5)
. "$(dirname "$0")/lib.sh"
REPEAT=${REPEAT:-10}
DURATION=${DURATION:-5}
out="$BENCH_OUT/noise"
"$PERFLAB" suite rps --tags simple-proxy --gateway nginx --repeat "$REPEAT" --duration "$DURATION" --quiet --output "$out" >/dev/null
dir=$(latest "$out")
python3 - "$dir" <<'PY'
import json, sys
for row in json.load(open(sys.argv[1] + "summary.json")):
    r, c = row["rps"], row["rps_per_gateway_cpu_s"]
    print(f'{row["case"]}: n={r["n"]}  raw RPS mean {r["mean"]:.0f} CV {100*r["cv"]:.2f}%   '
          f'req/gateway-CPU-s mean {c["mean"]:.0f} CV {100*c["cv"]:.2f}%   flagged runs {row["flagged_runs"]}')
PY
