#!/usr/bin/env bash
# Starts (or stops) a dockerd for the containerlab images and tests that leaves the host's
# forwarding alone, so the namespace lab (its bridges and veths) keeps working next to it:
#   --iptables=false --ip6tables=false   no DOCKER chains, no FORWARD policy DROP (dockerd's
#                       default sets it) and no br_netfilter (loaded only to filter bridges)
#   --ip-forward=false  the host's net.ipv4.ip_forward stays as it is
#   --ip-masq=false --bridge=none   no docker0 bridge and no NAT; containers get
#                       --network none or host, and the test wires their links itself
#
#   containerlab/dockerd.sh start|stop|status
#
# start checks the FORWARD policy, br_netfilter and ip_forward before and after, and stops
# dockerd again (exit 1, with the reason) if anything changed. Log: /var/log/lbauto-dockerd.log.
set -euo pipefail
PIDFILE=/run/lbauto-dockerd.pid
LOG=/var/log/lbauto-dockerd.log
#: why the last start failed (tests/integration/test_containerlab.py reports it)
REASON=/run/lbauto-dockerd.reason

die() { echo "dockerd.sh: $*" >&2; exit 1; }
fail_start() { echo "$*" > "$REASON"; die "$*"; }

forward_policy() {
    if command -v iptables >/dev/null; then
        iptables -S FORWARD 2>/dev/null | awk '$1 == "-P" {print $3}'
    fi
}

snapshot() {  # what dockerd must not change
    local brnf=absent
    [[ -d /sys/module/br_netfilter ]] && brnf="loaded:$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null)"
    echo "FORWARD=$(forward_policy) br_netfilter=$brnf ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
}

running() { docker info >/dev/null 2>&1; }

start() {
    [[ $(id -u) -eq 0 ]] || die "run as root"
    rm -f "$REASON"
    command -v dockerd >/dev/null || fail_start "dockerd is not installed (apt-get install docker.io)"
    if running; then
        echo "dockerd.sh: a dockerd is already running: $(snapshot)"
        return
    fi
    local before after
    before=$(snapshot)
    local from=1
    [[ -f $LOG ]] && from=$(($(wc -l <"$LOG") + 1))
    setsid dockerd --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none \
        --pidfile "$PIDFILE" </dev/null >>"$LOG" 2>&1 &
    local n=0
    until running; do
        n=$((n + 1))
        if [[ $n -gt 150 ]] || ! kill -0 $! 2>/dev/null; then
            local new why
            new=$(tail -n "+$from" "$LOG")
            echo "$new" | tail -n 15 >&2
            # this start's fatal line, else its last line
            why=$(echo "$new" | grep -m1 'level=fatal' || echo "$new" | tail -n 1)
            fail_start "dockerd did not start: ${why:0:400} (log: $LOG)"
        fi
        sleep 0.2
    done
    after=$(snapshot)
    if [[ $after != "$before" ]]; then
        stop
        fail_start "dockerd changed the host's forwarding ($before -> $after); stopped it again"
    fi
    echo "dockerd.sh: dockerd running (pid $(cat "$PIDFILE")), host forwarding untouched: $after"
}

stop() {
    [[ -f $PIDFILE ]] || { echo "dockerd.sh: no dockerd started by this script"; return; }
    local pid
    pid=$(cat "$PIDFILE")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$PIDFILE"
    echo "dockerd.sh: dockerd stopped"
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) if running; then echo "running: $(snapshot)"; else echo "not running"; exit 1; fi ;;
    *) die "usage: $0 start|stop|status" ;;
esac
