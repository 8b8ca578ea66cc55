#!/usr/bin/env bash
# Builds the containerlab images locally, with no container registry:
#   1. debootstrap a minimal Debian bookworm from the host's configured Debian mirror,
#   2. `docker import` it as lbauto-clab/base:bookworm,
#   3. `docker build --network host` the FRR, agent and host images on top of it.
#
#   containerlab/images/build.sh [base|frr|agent|host ...]   (default: all of them)
#
# Environment: CLAB_MIRROR (default: the first Debian mirror in the host's apt sources),
# CLAB_REBUILD=1 rebuilds the base even if the image exists (it is reused otherwise, so one
# CI run pays for debootstrap once). Runs as root (debootstrap), needs a running dockerd.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BASE=lbauto-clab/base:bookworm
SUITE=bookworm
IMAGE_PY=3.11  # python3 of $SUITE

die() { echo "clab-images: $*" >&2; exit 1; }

mirror() {
    if [[ -n ${CLAB_MIRROR:-} ]]; then echo "$CLAB_MIRROR"; return; fi
    # deb822 (.sources, Debian 12/13 default) first, then one-line sources.list entries
    local m
    m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' \
        | grep -v -- '-security' | grep -m1 debian || true)
    if [[ -z $m ]]; then
        m=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
            | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
            | grep -v -- '-security' | grep -m1 debian || true)
    fi
    [[ -n $m ]] || die "no Debian mirror in /etc/apt/sources*; set CLAB_MIRROR"
    echo "$m"
}

build_base() {
    if [[ ${CLAB_REBUILD:-0} != 1 ]] && docker image inspect "$BASE" >/dev/null 2>&1; then
        echo "clab-images: $BASE exists (CLAB_REBUILD=1 to rebuild)"
        return
    fi
    command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
    local url root
    url=$(mirror)
    root=$(mktemp -d /var/tmp/lbauto-clab-rootfs.XXXXXX)
    trap 'rm -rf -- "$root"' RETURN
    echo "clab-images: debootstrap $SUITE from $url"
    # minbase: apt, dpkg and the Essential set (util-linux gives flock and setsid, which the FRR
    # driver's router-side scripts need). The keyring is the host's: Debian 13's
    # debian-archive-keyring still holds the bookworm keys.
    debootstrap --variant=minbase "$SUITE" "$root" "$url" >"$root.log" 2>&1 \
        || { tail -20 "$root.log" >&2; rm -f "$root.log"; die "debootstrap failed"; }
    rm -f "$root.log"
    # the image keeps the mirror debootstrap used; no apt lists or caches
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" -c . | docker import \
        -c 'ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' \
        -c 'LABEL org.lbauto.clab=1' \
        - "$BASE" >/dev/null
    echo "clab-images: built $BASE"
}

wheels() {
    # lbauto, its FRR driver and all their dependencies as wheels, made on the host with the
    # host's own pip setup: the image installs them with --no-index (no package index, proxy
    # or CA inside the build). Binary wheels must match the image's Python (bookworm: 3.11).
    local out=$here/.wheels py=${PYTHON:-$repo/.venv/bin/python}
    rm -rf -- "$out"; mkdir -p "$out"
    echo "clab-images: wheels of lbauto, napalm-frr and their dependencies"
    "$py" -m pip wheel -q --no-deps -w "$out" "$repo/napalm-frr" "$repo" 2> >(grep -v '^WARNING: Location' >&2)
    "$py" -m pip wheel -q --find-links "$out" -w "$out" "$out"/lbauto-*.whl 2> >(grep -v '^WARNING: Location' >&2)
    if [[ $("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])') != "$IMAGE_PY" ]]; then
        # another host Python (Debian 13: 3.13): fetch the binary wheels built for 3.11
        local w name version
        for w in "$out"/*.whl; do
            [[ $w == *-none-any.whl ]] && continue
            name=$(basename "$w" | cut -d- -f1); version=$(basename "$w" | cut -d- -f2)
            rm -f -- "$w"
            "$py" -m pip download -q --no-deps --only-binary=:all: -d "$out" \
                --python-version "$IMAGE_PY" --implementation cp \
                --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 \
                --platform manylinux2014_x86_64 "$name==$version" \
                || die "no $IMAGE_PY wheel of $name $version for the agent image"
        done
    fi
}

build_image() {  # name
    local name=$1
    # the classic builder (docker.io 20.10 has no buildx): newer clients print a deprecation
    # notice about it, left out here
    docker build -q --network host -f "$here/Dockerfile.$name" -t "lbauto-clab/$name:latest" \
        --build-arg BASE="$BASE" "$here" >/dev/null \
        2> >(grep -v -e 'legacy builder' -e buildx -e '^ *$' >&2)
    echo "clab-images: built lbauto-clab/$name:latest"
}

[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap and docker)"
docker info >/dev/null 2>&1 || die "dockerd is not running (containerlab/dockerd.sh start)"
targets=("$@")
((${#targets[@]})) || targets=(frr agent host)
# what each target needs, in build order; each step runs once
want=" "
for t in "${targets[@]}"; do
    case $t in
        base) want+="base " ;;
        frr) want+="base frr " ;;
        agent) want+="base wheels agent " ;;
        host) want+="base wheels agent host " ;;
        *) die "unknown image $t (base, frr, agent, host)" ;;
    esac
done
for step in base frr wheels agent host; do
    [[ $want == *" $step "* ]] || continue
    case $step in
        base) build_base ;;
        wheels) wheels ;;
        *) build_image "$step" ;;
    esac
done
rm -rf -- "$here/.wheels"  # copied into the agent image; not needed after the build
# a rebuilt image leaves its predecessor untagged: remove those (only this project's, by label)
docker image prune -f --filter label=org.lbauto.clab=1 >/dev/null
