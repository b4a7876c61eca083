#!/usr/bin/env bash
# Installs the Go toolchains the tests use:
# - Debian's golang-go (1.19 on bookworm) for the scrape test, which builds
#   and runs ../shared/fixtures/go/pprofdemo.go as a real net/http/pprof target;
# - Go 1.22 from Debian's bookworm-backports (/usr/lib/go-1.22/bin/go) for
#   the Go PGO test: `go build -pgo` (Go >= 1.21) must accept the profile
#   Ignis exports for `stack_trace_selector.go_pgo`.
# Idempotent: installs only what is missing.
set -euo pipefail

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

install() {
    if ! $SUDO apt-get install -y --no-install-recommends "$@"; then
        $SUDO apt-get update
        $SUDO apt-get install -y --no-install-recommends "$@"
    fi
}

if ! command -v go >/dev/null 2>&1; then
    if ! apt-cache show golang-go >/dev/null 2>&1; then
        $SUDO apt-get update
    fi
    install golang-go
fi
go version

PGO_GO=/usr/lib/go-1.22/bin/go
if [[ ! -x $PGO_GO ]]; then
    . /etc/os-release
    list=/etc/apt/sources.list.d/ignis-backports.list
    if [[ ${VERSION_CODENAME:-} == bookworm && ! -e $list ]]; then
        echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee "$list" >/dev/null
        $SUDO apt-get update
    fi
    install golang-1.22-go
fi
"$PGO_GO" version
