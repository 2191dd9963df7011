#!/bin/sh
# Builds the netns lab. Called by main.tf with LAB, NET, TAG, DIR, SCRIPTS, KONG_IP, WORKER_IP,
# KONG_INT and WORKER_INT in the environment.
#
# Order matters for the network rule: the guard route (unreachable NET.0.0/16) goes in before any
# lab address exists, so a lab address without a link never leaves the machine through the
# default route. The namespaces get no default route.
set -eu
: "${LAB:?}" "${NET:?}" "${TAG:?}" "${DIR:?}" "${SCRIPTS:?}"
: "${KONG_IP:?}" "${WORKER_IP:?}" "${KONG_INT:?}" "${WORKER_INT:?}"

STATE=/run/perflab-netns
OWNER="$STATE/$NET.owner"
K="perflab-$LAB-kong"
W="perflab-$LAB-worker"
SSHD=/usr/sbin/sshd
SFTP=/usr/lib/openssh/sftp-server

for tool in ip ssh-keygen ss "$SSHD"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "netns lab: $tool is not installed" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "netns lab: needs root (ip netns, sshd)" >&2; exit 1; }

# Leftovers of an earlier lab with the same id (a crash, a tainted resource) go first.
sh "$SCRIPTS/down.sh"

mkdir -p "$STATE"
if [ -e "$OWNER" ]; then
    echo "netns lab: $NET.0.0/16 belongs to perflab lab '$(cat "$OWNER")'; give this lab another net_octet" >&2
    exit 1
fi
if [ -n "$(ip -4 route show root "$NET.0.0/16")" ] || [ -n "$(ip -4 addr show to "$NET.0.0/16")" ]; then
    echo "netns lab: $NET.0.0/16 is already in use on this machine; give this lab another net_octet" >&2
    exit 1
fi

# From here on, a failure removes what was built.
trap 'rc=$?; if [ $rc -ne 0 ]; then sh "$SCRIPTS/down.sh"; fi; exit $rc' EXIT

echo "$LAB" > "$OWNER"
ip route add unreachable "$NET.0.0/16"

ip netns add "$K"
ip netns add "$W"
ip -n "$K" link set lo up
ip -n "$W" link set lo up

# Public (SSH) plane: one /30 per host between the root namespace and the host.
plane() { # ns, suffix, root address, host address
    ip link add "pl$TAG${2}0" type veth peer name "pl$TAG${2}1"
    ip link set "pl$TAG${2}1" netns "$1"
    ip -n "$1" link set "pl$TAG${2}1" name pub0
    ip addr add "$3/30" dev "pl$TAG${2}0"
    ip link set "pl$TAG${2}0" up
    ip -n "$1" addr add "$4/30" dev pub0
    ip -n "$1" link set pub0 up
}
plane "$K" k "$NET.0.1" "$KONG_IP"
plane "$W" w "$NET.0.5" "$WORKER_IP"

# Internal (load) plane: a veth pair straight between the two hosts.
ip link add "pl${TAG}ki" type veth peer name "pl${TAG}wi"
ip link set "pl${TAG}ki" netns "$K"
ip link set "pl${TAG}wi" netns "$W"
ip -n "$K" link set "pl${TAG}ki" name int0
ip -n "$W" link set "pl${TAG}wi" name int0
ip -n "$K" addr add "$KONG_INT/24" dev int0
ip -n "$W" addr add "$WORKER_INT/24" dev int0
ip -n "$K" link set int0 up
ip -n "$W" link set int0 up

# Keys: a client key authorized for root on both hosts, and one host key per host.
mkdir -p "$DIR/lab" /run/sshd
rm -f "$DIR/id_rsa" "$DIR/id_rsa.pub"
ssh-keygen -q -t ed25519 -N '' -C "perflab-$LAB" -f "$DIR/id_rsa"
chmod 600 "$DIR/id_rsa"
cp "$DIR/id_rsa.pub" "$DIR/lab/authorized_keys"
: > "$DIR/lab/known_hosts"

sshd_up() { # host name, ns, address
    key="$DIR/lab/$1-host-key"
    rm -f "$key" "$key.pub"
    ssh-keygen -q -t ed25519 -N '' -C "perflab-$LAB-$1" -f "$key"
    echo "$3 $(cut -d' ' -f1,2 "$key.pub")" >> "$DIR/lab/known_hosts"
    cat > "$DIR/lab/sshd-$1.conf" <<CONF
ListenAddress $3
Port 22
HostKey $key
PidFile $DIR/lab/sshd-$1.pid
AuthorizedKeysFile $DIR/lab/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
MaxSessions 64
MaxStartups 64:30:128
Subsystem sftp $SFTP
CONF
    "$SSHD" -t -f "$DIR/lab/sshd-$1.conf"
    ip netns exec "$2" "$SSHD" -f "$DIR/lab/sshd-$1.conf" -E "$DIR/lab/sshd-$1.log"
}
sshd_up kong "$K" "$KONG_IP"
sshd_up worker "$W" "$WORKER_IP"

# Ready when both listen.
for ns in "$K" "$W"; do
    i=0
    until ip netns exec "$ns" ss -Hltn 'sport = :22' | grep -q .; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "netns lab: sshd in $ns did not start (see $DIR/lab/)" >&2; exit 1; }
        sleep 0.05
    done
done
echo "netns lab $LAB: kong $KONG_IP/$KONG_INT, worker $WORKER_IP/$WORKER_INT"
