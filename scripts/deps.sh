#!/bin/sh
# Install what libinfer needs to build, test and run its demo, on Debian 12 (as root),
# non-interactively and idempotently: packages already present are not touched, and
# `apt-get update` runs once, only when something is missing.
# Used by `make deps`, which `make test` and `make demo` run first.
set -eu

PKGS="build-essential pkg-config libopenblas-dev libuv1-dev libcmocka-dev libcjson-dev valgrind python3 python3-pytest python3-prometheus-client gnuplot-nox libhttp-parser-dev wrk python3-venv curl python3-pip"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "deps: all present ($PKGS)"
    exit 0
fi

echo "deps: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "deps: need root to install:$missing (run as root, or install them yourself)" >&2
        exit 1
    fi
else
    SUDO=""
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
echo "deps: done"
