#!/bin/sh
# Removes the netns lab (and leftovers of a crashed one): every process in its namespaces, the
# namespaces, the host-side veths, the guard route (only when this lab owns it) and the generated
# keys. Idempotent. Called by main.tf with LAB, NET, TAG and DIR in the environment.
set -u
: "${LAB:?}" "${NET:?}" "${TAG:?}" "${DIR:?}"

STATE=/run/perflab-netns
OWNER="$STATE/$NET.owner"

for host in kong worker; do
    ns="perflab-$LAB-$host"
    [ -e "/run/netns/$ns" ] || continue
    pids=$(ip netns pids "$ns" 2>/dev/null)
    [ -z "$pids" ] || kill -TERM $pids 2>/dev/null
    i=0
    while pids=$(ip netns pids "$ns" 2>/dev/null) && [ -n "$pids" ] && [ $i -lt 50 ]; do
        [ $i -lt 5 ] || kill -KILL $pids 2>/dev/null
        i=$((i + 1))
        sleep 0.1
    done
    ip netns del "$ns"
done

for link in k0 k1 w0 w1 ki wi; do
    if ip link show "pl$TAG$link" >/dev/null 2>&1; then
        ip link del "pl$TAG$link" 2>/dev/null
    fi
done

if [ "$(cat "$OWNER" 2>/dev/null)" = "$LAB" ]; then
    ip route del unreachable "$NET.0.0/16" 2>/dev/null
    rm -f "$OWNER"
fi

rm -rf "$DIR/lab" "$DIR/id_rsa" "$DIR/id_rsa.pub"
exit 0
