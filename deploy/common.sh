# Shared by deploy/run and deploy/test: make a fresh machine able to build and run earshot.
# Idempotent: installs only what is missing.

set -euo pipefail

# Debian packages the build and the tests need: clang/llvm compile the XDP program and the
# vendored libxdp/libbpf (with libelf, zlib, m4, pkg-config); iproute2 and ethtool set up the
# test namespaces and NIC queues; linux-libc-dev and gcc-multilib give clang the kernel UAPI
# headers (asm/types.h) for the BPF target; python3-venv lets controlplane/tests/schemathesis.rs
# install its pinned schemathesis into a virtualenv under target/.
EARSHOT_DEBS=(pkg-config clang llvm libelf-dev zlib1g-dev libpcap-dev m4 iproute2 iputils-ping ethtool linux-libc-dev gcc-multilib python3-venv)

# Debian packages only the tests need (deploy/test): the real-Kamailio NG rig
# (tests/tests/kamailio.rs, docs/ng.md) runs Kamailio (its rtpengine module is in the base
# package), sipp (sip-tester) and the reference NG relay rtpengine (rtpengine-daemon) as
# processes of its own, on OS-chosen loopback ports.
EARSHOT_TEST_DEBS=(kamailio sip-tester rtpengine-daemon)
# The services those packages start on install, holding SIP's 5060 and NG's 2223 (earshot's own
# default NG address, docs/ng.md): stopped and disabled when ensure_debs has just installed
# their package (one installed by hand beforehand is left as it is).
EARSHOT_TEST_SERVICES=(kamailio rtpengine-daemon)

# The packages the last ensure_debs installed.
EARSHOT_INSTALLED=()

ensure_debs() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        echo "earshot: installing ${missing[*]}" >&2
        local sudo=()
        [[ $(id -u) -eq 0 ]] || sudo=(sudo)
        "${sudo[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    EARSHOT_INSTALLED=("${missing[@]}")
}

# Stops and disables each named service whose package (same name) the last ensure_debs
# installed, on a machine run by systemd.
quiet_services() {
    [[ -d /run/systemd/system ]] || return 0
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    for service in "$@"; do
        [[ " ${EARSHOT_INSTALLED[*]} " == *" $service "* ]] || continue
        "${sudo[@]}" systemctl disable --now "$service" >/dev/null 2>&1 || true
    done
}

ensure_toolchain() {
    if ! command -v cargo >/dev/null 2>&1; then
        [[ -f "$HOME/.cargo/env" ]] && . "$HOME/.cargo/env"
    fi
    command -v cargo >/dev/null 2>&1 || {
        echo "earshot: no Rust toolchain (cargo) on this machine" >&2
        exit 1
    }
}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ensure_toolchain
ensure_debs "${EARSHOT_DEBS[@]}"
