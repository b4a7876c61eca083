#!/usr/bin/env bash
# Installs Debian's golang-go for the scrape test, which builds and runs
# ../shared/fixtures/go/pprofdemo.go as a real net/http/pprof target.
# Idempotent: does nothing when `go` is already on the PATH.
set -euo pipefail

if ! command -v go >/dev/null 2>&1; then
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show golang-go >/dev/null 2>&1; then
        $SUDO apt-get update
    fi
    if ! $SUDO apt-get install -y --no-install-recommends golang-go; then
        $SUDO apt-get update
        $SUDO apt-get install -y --no-install-recommends golang-go
    fi
fi
go version
