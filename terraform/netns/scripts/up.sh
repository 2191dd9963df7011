#!/bin/sh
# Builds the netns lab. Called by main.tf with LAB, NET, TAG, DIR, SCRIPTS and HOSTS in the
# environment; HOSTS has one line per host: `name code root-address address internal-address`
# (kong, worker, then the extra load hosts load-2, load-3, ...).
#
# Order matters for the network rule: the guard route (unreachable NET.0.0/16) goes in before any
# lab address exists, so a lab address without a link never leaves the machine through the
# default route. The namespaces get no default route.
#
# Each host is a namespace perflab-LAB-NAME with two links: `pub0`, a veth to the root namespace
# for SSH (a /30 per host), and `int0`, a veth to the bridge of the lab's switch namespace
# perflab-LAB-net for the load traffic (NET.1.0/24), which so never crosses the root namespace
# (whose firewall, e.g. Docker's FORWARD policy, does not apply there).
set -eu
: "${LAB:?}" "${NET:?}" "${TAG:?}" "${DIR:?}" "${SCRIPTS:?}" "${HOSTS:?}"

STATE=/run/perflab-netns
OWNER="$STATE/$NET.owner"
SWITCH="perflab-$LAB-net"
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

# The switch: a bridge in a namespace of its own, joining every host's int0.
ip netns add "$SWITCH"
ip -n "$SWITCH" link set lo up
ip -n "$SWITCH" link add br0 type bridge
ip -n "$SWITCH" link set br0 up

# Keys: a client key authorized for root on every host, and one host key per host.
mkdir -p "$DIR/lab" /run/sshd
rm -f "$DIR/id_rsa" "$DIR/id_rsa.pub"
ssh-keygen -q -t ed25519 -N '' -C "perflab-$LAB" -f "$DIR/id_rsa"
chmod 600 "$DIR/id_rsa"
cp "$DIR/id_rsa.pub" "$DIR/lab/authorized_keys"
: > "$DIR/lab/known_hosts"

host_up() { # name, code, root address, address, internal address
    ns="perflab-$LAB-$1"
    ip netns add "$ns"
    ip -n "$ns" link set lo up

    # Public (SSH) plane: a /30 between the root namespace and the host.
    ip link add "pl$TAG${2}0" type veth peer name "pl$TAG${2}1"
    ip link set "pl$TAG${2}1" netns "$ns"
    ip -n "$ns" link set "pl$TAG${2}1" name pub0
    ip addr add "$3/30" dev "pl$TAG${2}0"
    ip link set "pl$TAG${2}0" up
    ip -n "$ns" addr add "$4/30" dev pub0
    ip -n "$ns" link set pub0 up

    # Internal (load) plane: a port of the switch's bridge.
    ip link add "pl$TAG${2}i" type veth peer name "pl$TAG${2}b"
    ip link set "pl$TAG${2}i" netns "$ns"
    ip link set "pl$TAG${2}b" netns "$SWITCH"
    ip -n "$ns" link set "pl$TAG${2}i" name int0
    ip -n "$SWITCH" link set "pl$TAG${2}b" master br0
    ip -n "$SWITCH" link set "pl$TAG${2}b" up
    ip -n "$ns" addr add "$5/24" dev int0
    ip -n "$ns" link set int0 up

    # sshd on the public address, with a fresh host key.
    key="$DIR/lab/$1-host-key"
    rm -f "$key" "$key.pub"
    ssh-keygen -q -t ed25519 -N '' -C "perflab-$LAB-$1" -f "$key"
    echo "$4 $(cut -d' ' -f1,2 "$key.pub")" >> "$DIR/lab/known_hosts"
    cat > "$DIR/lab/sshd-$1.conf" <<CONF
ListenAddress $4
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
    ip netns exec "$ns" "$SSHD" -f "$DIR/lab/sshd-$1.conf" -E "$DIR/lab/sshd-$1.log"
}

echo "$HOSTS" | while read -r name code root addr internal; do
    [ -n "$name" ] || continue
    host_up "$name" "$code" "$root" "$addr" "$internal"
done

# Ready when every sshd listens.
echo "$HOSTS" | while read -r name _; do
    [ -n "$name" ] || continue
    i=0
    until ip netns exec "perflab-$LAB-$name" ss -Hltn 'sport = :22' | grep -q .; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "netns lab: sshd in perflab-$LAB-$name did not start (see $DIR/lab/)" >&2; exit 1; }
        sleep 0.05
    done
done
echo "netns lab $LAB:" $(echo "$HOSTS" | while read -r name _ _ addr internal; do echo "$name $addr/$internal"; done | paste -sd, -)
