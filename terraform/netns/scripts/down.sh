#!/bin/sh
# Removes the netns lab (and leftovers of a crashed one, whatever its number of load hosts):
# every process in its namespaces, the namespaces, the host-side veths, the guard route (only
# when this lab owns it) and the generated keys. Idempotent. Called by main.tf with LAB, NET, TAG
# and DIR in the environment.
set -u
: "${LAB:?}" "${NET:?}" "${TAG:?}" "${DIR:?}"

STATE=/run/perflab-netns
OWNER="$STATE/$NET.owner"
# Every host a lab can have (main.tf allows up to 16 load hosts), and its veth code.
HOSTS="kong:k worker:w net:-"
i=2
while [ $i -le 16 ]; do
    HOSTS="$HOSTS load-$i:$i"
    i=$((i + 1))
done

for host in $HOSTS; do
    ns="perflab-$LAB-${host%%:*}"
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

# Veths of a half-built lab that are still in the root namespace.
for host in $HOSTS; do
    code=${host#*:}
    [ "$code" != - ] || continue
    for end in 0 1 i b; do
        if ip link show "pl$TAG$code$end" >/dev/null 2>&1; then
            ip link del "pl$TAG$code$end" 2>/dev/null
        fi
    done
done

if [ "$(cat "$OWNER" 2>/dev/null)" = "$LAB" ]; then
    ip route del unreachable "$NET.0.0/16" 2>/dev/null
    rm -f "$OWNER"
fi

rm -rf "$DIR/lab" "$DIR/id_rsa" "$DIR/id_rsa.pub"
exit 0
