#!/usr/bin/env bash
# netns.sh: the veth set-up of the load generator's measurements between network namespaces.
#
#   bench/netns.sh up      create it (again: whatever part is missing)
#   bench/netns.sh down    delete it
#   bench/netns.sh status  show it
#
# `up` creates two network namespaces joined by a veth pair, nothing else in them:
#
#   esb-app (the appliance)   esb-a  10.99.0.1/24  <-- veth -->  esb-g  10.99.0.2/24  esb-gen (the load generator)
#
# with both ends and both namespaces' `lo` up. There is no route out of either namespace and no
# link to the machine's own: what is sent to 10.99.0.0/24 from inside stays on the pair. Then
#
#   ip netns exec esb-app taskset -c 1 target/release/earshotd --interface esb-a \
#       --media-ip 10.99.0.1 --http-listen 10.99.0.1:18080 …
#   ip netns exec esb-gen target/release/loadgen --api http://10.99.0.1:18080 \
#       --bind-ip 10.99.0.2 --netns-subnet 10.99.0.0/24 …
#
# Both commands are idempotent: `up` leaves what is already right alone and replaces a pair whose
# ends are not where they belong; `down` deletes the namespaces (which destroys the pair) and
# says so, or that there was nothing to delete. Only `esb-*` names are touched. Needs root and
# iproute2. See bench/README.md.

set -euo pipefail

prog=netns.sh
app_ns=esb-app
gen_ns=esb-gen
app_if=esb-a
gen_if=esb-g
app_ip=10.99.0.1
gen_ip=10.99.0.2
prefix=24

say() {
    echo "$prog: $*"
}

die() {
    echo "$prog: $*" >&2
    exit 1
}

usage() {
    echo "usage: $prog up|down|status" >&2
    exit 2
}

# Runs a command, printing it first.
run() {
    say "$*"
    "$@"
}

ns_exists() {
    ip netns list | awk '{print $1}' | grep -qx -- "$1"
}

# Whether interface $2 exists in namespace $1.
link_in() {
    ip -n "$1" link show dev "$2" >/dev/null 2>&1
}

up() {
    for ns in "$app_ns" "$gen_ns"; do
        if ns_exists "$ns"; then
            say "namespace $ns: already there"
        else
            run ip netns add "$ns"
        fi
    done
    if link_in "$app_ns" "$app_if" && link_in "$gen_ns" "$gen_if"; then
        say "veth $app_if ($app_ns) <-> $gen_if ($gen_ns): already there"
    else
        # Half a pair (the other end deleted, or moved): start the pair afresh.
        for pair in "$app_ns:$app_if" "$gen_ns:$gen_if"; do
            if link_in "${pair%%:*}" "${pair#*:}"; then
                run ip -n "${pair%%:*}" link del dev "${pair#*:}"
            fi
        done
        run ip link add "$app_if" netns "$app_ns" type veth peer name "$gen_if" netns "$gen_ns"
    fi
    for side in "$app_ns:$app_if:$app_ip" "$gen_ns:$gen_if:$gen_ip"; do
        IFS=: read -r ns dev addr <<<"$side"
        if ip -n "$ns" -4 addr show dev "$dev" | grep -q "inet $addr/$prefix "; then
            say "$ns $dev: $addr/$prefix already there"
        else
            run ip -n "$ns" addr add "$addr/$prefix" dev "$dev"
        fi
        run ip -n "$ns" link set dev lo up
        run ip -n "$ns" link set dev "$dev" up
    done
    # The far end answers (ARP and ICMP on the fresh pair); the appliance is not started yet.
    if ip netns exec "$gen_ns" ping -c 1 -W 2 "$app_ip" >/dev/null 2>&1; then
        say "ok: $gen_ns reaches $app_ip over the pair"
    else
        die "$gen_ns cannot reach $app_ip over the pair"
    fi
}

down() {
    local deleted=0
    for ns in "$app_ns" "$gen_ns"; do
        if ns_exists "$ns"; then
            # Deleting either namespace destroys the pair with it.
            run ip netns del "$ns"
            deleted=1
        fi
    done
    if ((deleted == 0)); then
        say "nothing to delete ($app_ns and $gen_ns are not there)"
    fi
}

status() {
    for ns in "$app_ns" "$gen_ns"; do
        if ns_exists "$ns"; then
            say "namespace $ns:"
            ip -n "$ns" -br addr
            ip -n "$ns" -d link show | grep -E 'xdp|prog/' || true
        else
            say "namespace $ns: absent"
        fi
    done
}

(($# == 1)) || usage
if [[ $(id -u) -ne 0 ]]; then
    die "needs root (ip netns)"
fi
case $1 in
up) up ;;
down) down ;;
status) status ;;
*) usage ;;
esac
