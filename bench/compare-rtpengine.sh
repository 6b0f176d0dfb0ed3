#!/usr/bin/env bash
# compare-rtpengine.sh: the same relay load through earshot and through rtpengine, in one run.
#
#   bench/compare-rtpengine.sh                 loads of 250, 500 and 1,000 calls, 10 s windows
#   bench/compare-rtpengine.sh --quick         one load of 100 calls, 2 s window (a smoke run)
#   bench/compare-rtpengine.sh --loads "500 1000 1500" --duration-secs 20 --retries 2
#
# For each load, one after the other: earshotd (release, io_uring backend, one worker; the whole
# process pinned to core 1) is started, loaded by `loadgen --mode relay --calls N` (pinned to
# core 0) and stopped; then rtpengine (Debian's rtpengine-daemon, userspace forwarding only,
# pinned to core 1) is started, loaded by the same command with `--target rtpengine` and
# stopped. Each daemon starts fresh for each load, and only one runs at a time. The table at
# the end gives, per load: CPU-ns per relayed packet for both (daemon CPU time from
# /proc/<pid>/stat ÷ packets offered to it), their ratio, loss, p50/p99 one-way latency of the
# relayed flows, each daemon's CPU use, and the CPU every other process used meanwhile (a
# shared machine perturbs the figures: see bench/README.md).
#
# rtpengine: installed with apt-get if `rtpengine` is missing (needs root; its service is left
# disabled and not started; an existing policy-rc.d is respected). It runs as a child of this
# script with no config file (`--config-file=none`), `--table=-1` (no kernel module, no
# iptables: every packet is forwarded in userspace), NG on 127.0.0.1:2223, media on 127.0.0.1
# ports 45000-59999 (earshot's are 20000-44999), `--delete-delay=0` (ports free at once).
# Everything is loopback; every process it starts is stopped on exit, by pid.
#
# Options:
#   --quick                 one load of 100 calls, 1 s warm-up, 2 s window, no retry
#   --loads "N …"           the loads, in calls (default "250 500 1000")
#   --duration-secs S       measurement window per load (default 10)
#   --warmup-secs S         traffic before the window (default 3)
#   --retries R             loadgen --retries: measure a failing load again (default 1)
#   --rtpengine-threads T   rtpengine --num-threads (default: its own default, 4 here)
#   --wait-quiet S          on a shared machine: before each daemon starts, wait up to S
#                           seconds for 5 quiet seconds (no process started, < 3 % CPU busy)
#   --no-build              use the binaries already in target/release
#   --out DIR               keep the raw outputs there (default: a new temporary directory)
#
# Needs: 2+ cores, cargo, curl, iproute2 (ss), and root when rtpengine-daemon or jq is missing.

set -euo pipefail

prog=compare-rtpengine.sh
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
release="$root/target/release"

loads="250 500 1000"
duration=10
warmup=3
retries=1
rtpe_threads=""
wait_quiet=0
build=1
out=""

http=127.0.0.1:18080
ng=127.0.0.1:2223
earshot_ports=(20000 44999)
rtpe_ports=(45000 59999)
daemon_core=1
loadgen_core=0

say() { echo "$prog: $*" >&2; }
die() {
    say "$*"
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    --quick)
        loads="100" duration=2 warmup=1 retries=0
        ;;
    --loads) loads=${2:?}; shift ;;
    --duration-secs) duration=${2:?}; shift ;;
    --warmup-secs) warmup=${2:?}; shift ;;
    --retries) retries=${2:?}; shift ;;
    --rtpengine-threads) rtpe_threads=${2:?}; shift ;;
    --wait-quiet) wait_quiet=${2:?}; shift ;;
    --no-build) build=0 ;;
    --out) out=${2:?}; shift ;;
    -h | --help)
        sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
for n in $loads; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "--loads: $n is not a number of calls"
done

[ "$(nproc)" -ge 2 ] || die "needs 2 cores (daemon on core $daemon_core, loadgen on core $loadgen_core)"

# --- rtpengine --------------------------------------------------------------------------------

install_rtpengine() {
    command -v rtpengine >/dev/null && return
    [ "$(id -u)" = 0 ] || die "rtpengine is not installed and installing it needs root"
    say "installing rtpengine-daemon (apt-get)"
    # The package's postinst starts its service unless policy-rc.d forbids it: forbid it for the
    # install (unless the machine already has a policy, which is then respected).
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# compare-rtpengine.sh: no service starts during its install\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    local rc=0
    apt-get update -q >&2 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            rtpengine-daemon >&2 || rc=$?
    [ "$made_policy" = 1 ] && rm -f "$policy"
    [ "$rc" = 0 ] || die "apt-get install rtpengine-daemon failed"
    # The package enables its unit; this script runs its own instance instead.
    if command -v systemctl >/dev/null; then
        systemctl disable rtpengine-daemon.service >&2 2>&1 || true
        if [ -d /run/systemd/system ] && systemctl is-active --quiet rtpengine-daemon.service; then
            systemctl stop rtpengine-daemon.service >&2 || true
        fi
    fi
}

command -v jq >/dev/null || {
    [ "$(id -u)" = 0 ] || die "needs jq"
    say "installing jq (apt-get)"
    apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq >&2
}
install_rtpengine
rtpe_version=$(rtpengine --version 2>&1 | sed -n 's/^Version: *//p')
[ -n "$rtpe_version" ] || rtpe_version=$(rtpengine --version 2>&1 | head -n 1)

# --- build ------------------------------------------------------------------------------------

if [ "$build" = 1 ]; then
    say "building earshotd and loadgen (release)"
    (cd "$root" && cargo build --release -q -p controlplane -p earshot-bench) ||
        die "cargo build failed"
fi
for b in earshotd loadgen; do
    [ -x "$release/$b" ] || die "$release/$b is missing (run without --no-build)"
done

# --- processes --------------------------------------------------------------------------------

if [ -z "$out" ]; then
    out=$(mktemp -d /tmp/compare-rtpengine.XXXXXX)
else
    mkdir -p "$out"
fi
started=() # pids of the daemons this script started and has not stopped yet

stop_pid() {
    local pid=$1 _
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "pid $pid did not stop on SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    local kept=()
    for p in "${started[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
    started=("${kept[@]}")
}

cleanup() {
    local pid
    for pid in "${started[@]}"; do stop_pid "$pid"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tcp_busy() { [ -n "$(ss -Htln "sport = :${1##*:}")" ]; }
udp_busy() { [ -n "$(ss -Hlun "sport = :${1##*:}")" ]; }

# earshotd's bootstrap admin token, which loadgen presents too (both read it from the
# environment): a throwaway one for these loopback-only daemons unless one is given.
if [ -z "${EARSHOT_ADMIN_TOKEN:-}" ]; then
    EARSHOT_ADMIN_TOKEN=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
fi
export EARSHOT_ADMIN_TOKEN

tcp_busy "$http" && die "$http is in use (another earshotd?)"
udp_busy "$ng" && die "$ng is in use (rtpengine's service, or another NG server?): stop it first"

# shellcheck disable=SC2034 # cf_out is a nameref: it sets the caller's array
# Sets the array named $1 to: busy and total CPU ticks (all CPUs), and processes started since
# boot; with builtins only, so as not to start a process itself.
cpu_and_forks() {
    local -n cf_out=$1
    local name u n s idle io irq sirq steal rest
    while read -r name u n s idle io irq sirq steal rest; do
        case "$name" in
        cpu) cf_out[0]=$((u + n + s + irq + sirq + steal)) cf_out[1]=$((u + n + s + idle + io + irq + sirq + steal)) ;;
        processes) cf_out[2]=$u ;;
        esac
    done </proc/stat
}

# With --wait-quiet: waits until 5 s pass with no process started and under 3 % of the CPUs
# busy (from /proc/stat), or until the --wait-quiet bound, and says which.
wait_quiet() {
    [ "$wait_quiet" -gt 0 ] || return 0
    local deadline=$((SECONDS + wait_quiet)) a b
    while [ "$SECONDS" -lt "$deadline" ]; do
        cpu_and_forks a
        sleep 5 # the one process started in between
        cpu_and_forks b
        if [ $((b[2] - a[2])) -le 1 ] && [ $(((b[0] - a[0]) * 100)) -lt $((3 * (b[1] - a[1]))) ]; then
            return 0
        fi
    done
    say "the machine did not go quiet within ${wait_quiet} s: measuring anyway"
}

# Starts earshotd on core 1; sets `pid`.
start_earshot() {
    local dir="$out/earshotd-$1"
    mkdir -p "$dir"
    # `exec` all the way down: the pid of the subshell becomes earshotd's.
    (cd "$dir" && exec taskset -c "$daemon_core" "$release/earshotd" --backend uring \
        --cores "$daemon_core" --http-listen "$http" --ng-listen '' \
        --port-min "${earshot_ports[0]}" --port-max "${earshot_ports[1]}" >earshotd.log 2>&1) &
    pid=$!
    started+=("$pid")
    local _
    for _ in $(seq 100); do
        curl -sf --noproxy '*' -o /dev/null "http://$http/healthz" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    die "earshotd did not come up (see $dir/earshotd.log)"
}

# Starts rtpengine on core 1, userspace forwarding only; sets `pid`.
start_rtpengine() {
    local log="$out/rtpengine-$1.log" threads=()
    [ -n "$rtpe_threads" ] && threads=(--num-threads="$rtpe_threads")
    taskset -c "$daemon_core" rtpengine --config-file=none --table=-1 \
        --interface=127.0.0.1 --listen-ng="$ng" \
        --port-min="${rtpe_ports[0]}" --port-max="${rtpe_ports[1]}" \
        --delete-delay=0 "${threads[@]}" \
        --foreground --log-stderr --log-level=5 >"$log" 2>&1 &
    pid=$!
    started+=("$pid")
    local _
    for _ in $(seq 100); do
        udp_busy "$ng" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    die "rtpengine did not come up (see $log)"
}

# Runs the relay load of $2 calls against target $1 (whose pid is $3); the JSON line goes to
# $out/$1-$2.json, everything to $out/$1-$2.txt.
load() {
    local target=$1 calls=$2 daemon=$3 extra=()
    if [ "$target" = earshot ]; then
        extra=(--api "http://$http")
    else
        extra=(--target rtpengine --ng "$ng")
    fi
    say "$target: $calls calls"
    if "$release/loadgen" "${extra[@]}" --pid "$daemon" --core "$loadgen_core" --mode relay \
        --calls "$calls" --duration-secs "$duration" --warmup-secs "$warmup" \
        --retries "$retries" --json >"$out/$target-$calls.txt" 2>&1; then
        grep '^{' "$out/$target-$calls.txt" | tail -n 1 >"$out/$target-$calls.json"
        grep -E '^ +[0-9]+ +[0-9]+ ' "$out/$target-$calls.txt" >&2 || true
    else
        say "$target at $calls calls failed: $(tail -n 1 "$out/$target-$calls.txt")"
        echo '{}' >"$out/$target-$calls.json"
    fi
}

earshot_commit=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo '?')
say "earshot $earshot_commit; rtpengine $rtpe_version; outputs in $out"
for n in $loads; do
    wait_quiet
    start_earshot "$n"
    load earshot "$n" "$pid"
    stop_pid "$pid"
    wait_quiet
    start_rtpengine "$n"
    load rtpengine "$n" "$pid"
    stop_pid "$pid"
done

# --- the table --------------------------------------------------------------------------------

# The last attempt of the load (the one that passed, or the last that failed).
field() { jq -r "(.results // [])[-1] // {} | $2" "$1"; }
fmt() {
    local v=$1 f=$2
    # shellcheck disable=SC2059 # the format is the caller's, one of a few literals
    if [ -z "$v" ] || [ "$v" = null ]; then echo "-"; else printf "$f" "$v"; fi
}

# "earshot / rtpengine" of one field of the results of $e and $r.
pair() { echo "$(fmt "$(field "$e" "$1")" "$2") / $(fmt "$(field "$r" "$1")" "$2")"; }
# Other work on the machine over the window: CPU of the processes alive at its end, and how
# many processes were started (short-lived ones, a compiler or a test run, show only there).
others() {
    echo "$(fmt "$(field "$1" .other_processes_cpu_pct)" "%.1f") ($(fmt "$(field "$1" .processes_started)" "%d"))"
}
# A load that failed is marked: loss, or the load generator saturated ("fails"); or the daemon
# fell behind ("backlog": it relayed less than 99.5 % of what it was offered over the window,
# the rest waiting in its socket buffers, which hold seconds of packets before they overflow:
# the sequence numbers of what did arrive in the window show no gap, so loadgen's loss is 0).
mark() {
    case "$(field "$1" 'if .passes == null then "none" elif .passes | not then "fails"
                       elif .received_pps < 0.995 * .offered_pps then "backlog" else "ok" end')" in
    ok) ;;
    fails) echo " (fails)" ;;
    backlog) echo " (backlog)" ;;
    *) echo " (no result)" ;;
    esac
}

echo
echo "Relay load, earshot (io_uring, 1 worker) vs rtpengine $rtpe_version (userspace), each pinned"
echo "to core $daemon_core, loadgen on core $loadgen_core; ${duration} s window after ${warmup} s warm-up;"
echo "$(date -u +%F), earshot $earshot_commit, $(nproc) cores, Linux $(uname -r)."
echo
echo "| calls | pkts/s in | earshot ns/pkt | rtpengine ns/pkt | ratio | relayed pkts/s e / r | loss % e / r | p50 µs e / r | p99 µs e / r | daemon CPU % e / r | others' CPU % (processes started) e / r |"
echo "|---:|---:|---:|---:|---:|---|---|---|---|---|---|"
for n in $loads; do
    e="$out/earshot-$n.json" r="$out/rtpengine-$n.json"
    pps=$(fmt "$(field "$e" .offered_pps)" "%.0f")
    ens=$(field "$e" '.appliance_cpu_us_per_packet_in | if . == null then null else . * 1000 end')
    rns=$(field "$r" '.appliance_cpu_us_per_packet_in | if . == null then null else . * 1000 end')
    ratio="-"
    if [ "$ens" != null ] && [ "$rns" != null ]; then
        ratio=$(jq -rn --argjson e "$ens" --argjson r "$rns" '$e / $r * 100 | round / 100')
    fi
    echo "| $n | $pps | $(fmt "$ens" "%.0f")$(mark "$e") | $(fmt "$rns" "%.0f")$(mark "$r") | $ratio |" \
        "$(pair .received_pps "%.0f") | $(pair .loss_pct "%.4f") | $(pair .relay_latency_us.p50 "%.0f") |" \
        "$(pair .relay_latency_us.p99 "%.0f") | $(pair .appliance_cpu_pct "%.1f") |" \
        "$(others "$e") / $(others "$r") |"
done
echo
echo "ratio = earshot ÷ rtpengine (SPEC §6 target: ≤ 0.33). Raw outputs: $out"
