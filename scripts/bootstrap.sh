#!/usr/bin/env bash
# Installs what lbauto's lab, demo and tests need on a Debian/Ubuntu machine, then the project
# into a virtualenv. Safe to re-run: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
DEBS=(frr frr-pythontools openssh-server openssh-client nftables iproute2 procps psmisc iperf3)
missing=()
for p in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "bootstrap: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
    echo "bootstrap: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Package scripts must not start system-wide daemons: the lab starts its own per namespace.
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -x $VENV/bin/python ]]; then
    python3 -m venv "$VENV"
fi
stamp=$VENV/.lbauto-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e '.[dev]'
    touch "$stamp"
fi
