# Shared by deploy/run and deploy/test: make a fresh machine able to build and run earshot.
# Idempotent: installs only what is missing.

set -euo pipefail

# Debian packages the build and the tests need (none beyond the toolchain for the io_uring
# backend; listed here so every script installs the same set).
EARSHOT_DEBS=(pkg-config)

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
