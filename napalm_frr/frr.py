"""NAPALM driver for FRRouting: ``vtysh`` over SSH (netmiko ``linux``), locally, or in a
container (``docker exec``).

Candidates are FRR config text. Every open driver is a *session* with a random id and a
private working directory on the router; commits, the commit-confirm timer and the rollback
points are shared router-side records (:mod:`napalm_frr.state`), each tied to one commit id,
so two sessions on one router never apply, confirm or roll back each other's changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import re
import secrets
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napalm.base import NetworkDriver
from napalm.base.exceptions import (
    CommandErrorException,
    CommandTimeoutException,
    CommitError,
    ConnectionClosedException,
    ConnectionException,
    MergeConfigException,
    ReplaceConfigException,
)

from napalm_frr import getters as g
from napalm_frr import state as st
from napalm_frr.parse import (
    format_reload_diff,
    parse_version,
    routes_from_json,
    sanitize,
    split_waves,
    static_merge_diff,
    static_only,
)
from napalm_frr.transport import TRANSPORT_OPTIONS, TRANSPORTS, Result, Target, Transport

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./-]{1,200}$")
_COMMIT_ID = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{8}$")
#: Options the driver understands; anything else is passed to netmiko (ssh transport).
_OWN_OPTIONS = frozenset(
    {
        "transport",
        "pathspace",
        "netns",
        "port",
        "key_file",
        "state_dir",
        "vtysh",
        "frr_reload",
        "startup_config",
        "commit_id",
    }
)
_DEFAULT_VTYSH = "/usr/bin/vtysh"
_DEFAULT_RELOAD = "/usr/lib/frr/frr-reload.py"


def _checked(value: Any, pattern: re.Pattern[str], what: str) -> str:
    text = str(value)
    if not pattern.fullmatch(text):
        raise ConnectionException(
            f"invalid {what} {text!r}: use letters, digits, '_', '.', '-' "
            "(paths: absolute, the same characters and '/')"
        )
    return text


def _executable_option(value: Any, what: str) -> str:
    text = str(value)
    if not text.startswith("/"):
        raise ConnectionException(
            f"{what} {text!r} must be an absolute path to an executable (e.g. {_DEFAULT_VTYSH})"
        )
    return _checked(text, _SAFE_PATH, what)


def _local_executable(path: str, what: str) -> str:
    """For the local transport: ``path`` must be an absolute path to an existing executable
    file, or the driver refuses to start (it would run whatever the option names)."""
    if not os.path.isabs(path):
        raise ConnectionException(f"{what} {path!r} must be an absolute path (e.g. /usr/bin/vtysh)")
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise ConnectionException(f"{what} {path!r} is not an existing executable file")
    return path


@dataclass(frozen=True)
class Query:
    """One read-only command: ``key`` names it (mock data file, error text), ``command`` is the
    shell command line run on the router."""

    key: str
    command: str


@dataclass(frozen=True)
class Output:
    rc: int
    text: str


class FRRDriver(NetworkDriver):  # type: ignore[misc]
    """NAPALM driver for FRR. optional_args: ``transport`` (``ssh``/``local``/``docker``, see
    :data:`napalm_frr.transport.TRANSPORTS`; docker: ``container``, ``docker``), ``pathspace``,
    ``netns`` (local only), ``port``, ``key_file``, ``state_dir``, ``vtysh``, ``frr_reload``,
    ``startup_config``, ``commit_id`` (a recorded commit to confirm or roll back)."""

    platform = "frr"

    def __init__(
        self,
        hostname: str,
        username: str,
        password: str,
        timeout: int = 60,
        optional_args: dict[str, Any] | None = None,
    ) -> None:
        opts = dict(optional_args or {})
        self.hostname = hostname
        self.username = username
        self.password = password
        self.timeout = timeout
        self.transport_name = str(opts.get("transport", "ssh"))
        if self.transport_name not in TRANSPORTS:
            raise ConnectionException(
                f"unknown FRR transport {self.transport_name!r}: use "
                + ", ".join(repr(n) for n in TRANSPORTS)
            )
        TRANSPORTS[self.transport_name].check(opts)
        self.options = opts
        self.pathspace = (
            _checked(opts["pathspace"], _SAFE_NAME, "pathspace") if opts.get("pathspace") else None
        )
        self.netns = _checked(opts["netns"], _SAFE_NAME, "netns") if opts.get("netns") else None
        self.port = int(opts.get("port", 22))
        self.key_file = str(opts["key_file"]) if opts.get("key_file") else None
        self.state_dir = (
            _checked(opts["state_dir"], _SAFE_PATH, "state_dir") if opts.get("state_dir") else None
        )
        self.vtysh_bin = _executable_option(opts.get("vtysh", _DEFAULT_VTYSH), "vtysh")
        self.reload_bin = _executable_option(opts.get("frr_reload", _DEFAULT_RELOAD), "frr_reload")
        conf_dir = f"/etc/frr/{self.pathspace}" if self.pathspace else "/etc/frr"
        self.startup_path = _checked(
            opts.get("startup_config", f"{conf_dir}/frr.conf"), _SAFE_PATH, "startup_config"
        )
        if self.transport_name == "local":
            _local_executable(self.vtysh_bin, "vtysh")
            _local_executable(self.reload_bin, "frr_reload")
        #: The commit confirm_commit/rollback act on: this session's last commit, or one
        #: named with optional_args ``commit_id`` (or set here) to act on a recorded commit.
        self.commit_id: str | None = (
            _checked(opts["commit_id"], _COMMIT_ID, "commit_id") if opts.get("commit_id") else None
        )
        #: What the last has_pending_commit() saw: commit_id, session, deadline (epoch s),
        #: mine; None when nothing was pending.
        self.pending_commit: dict[str, Any] | None = None
        #: This session's id (names its private directory on the router).
        self.session_id = ""
        self.netmiko_args = {
            k: v for k, v in opts.items() if k not in _OWN_OPTIONS and k not in TRANSPORT_OPTIONS
        }
        self._transport: Transport | None = None
        self._state = ""
        self._candidate: str | None = None
        self._replace = False
        #: sha256 of every candidate text ``vtysh -C`` accepted in this session: the check is
        #: offline syntax only (same text, same FRR, same answer), and each vtysh start costs
        #: the router about 30-50 ms of CPU (a dry-run diff and the push after it load the
        #: same text; the commit re-checks what the load checked).
        self._valid: set[str] = set()

    # ------------------------------------------------------------------ plumbing

    def _session_path(self, name: str) -> str:
        return f"{self._state}/sessions/{self.session_id}/{name}"

    def _vtysh(self, *args: str) -> str:
        ps = ["-N", self.pathspace] if self.pathspace else []
        return shlex.join([self.vtysh_bin, *ps, *args])

    def _reload(self, filename: str) -> str:
        """``frr-reload.py --reload`` that leaves the startup config alone: frr-reload ends
        with ``vtysh write`` (merges through ``vtysh -f`` do not), and FRR 8.4's write puts
        the host's name in place of the configured ``hostname``. The driver changes the
        running config only, whichever way a commit, rollback or revert is applied."""
        ps = ["--pathspace", self.pathspace] if self.pathspace else []
        reload = shlex.join([self.reload_bin, "--reload", *ps, filename])
        startup = shlex.quote(self.startup_path)
        keep = f'"{self._state}/startup-keep.$$"'
        return (
            f"( if cp -p -- {startup} {keep} 2>/dev/null; then h=1; else h=0; fi; {reload}; "
            f"r=$?; if [ $h = 1 ]; then cat -- {keep} > {startup}; rm -f -- {keep}; fi; exit $r )"
        )

    def _run(self, command: str, stdin: str | None = None) -> Result:
        if self._transport is None:
            raise ConnectionClosedException(f"FRR driver for {self.hostname} is not open")
        return self._transport.run(command, stdin=stdin, timeout=float(self.timeout))

    def _name(self) -> str:
        return f"{self.hostname}{'/' + self.pathspace if self.pathspace else ''}"

    def _queries(self, queries: Sequence[Query]) -> list[Output]:
        """Run read-only commands in one round trip; each keeps its own exit code."""
        if not queries:
            return []
        mark = f"@@NAPALM-FRR-{secrets.token_hex(8)}@@"
        script = "".join(f'echo {mark}; ( {q.command} ) 2>&1; echo "{mark} $?"\n' for q in queries)
        res = self._run(script)
        chunks = res.stdout.split(mark + "\n")[1:]
        if len(chunks) != len(queries):
            raise CommandErrorException(
                f"{self._name()}: incomplete output for {', '.join(q.key for q in queries)}"
            )
        out = []
        for chunk in chunks:
            text, _, tail = chunk.rpartition(mark + " ")
            out.append(Output(int(tail.strip() or 1), text))
        return out

    def _vq(self, command: str) -> Query:
        return Query(command, self._vtysh("-c", command))

    def _one(self, query: Query, *, check: bool = True) -> str:
        (out,) = self._queries([query])
        if check and out.rc != 0:
            raise CommandErrorException(
                f"{self._name()}: {query.key!r} failed (rc {out.rc}): {out.text.strip()[:300]}"
            )
        return out.text

    # ------------------------------------------------------------------ connection

    def open(self) -> None:
        self._transport = TRANSPORTS[self.transport_name].connect(
            Target(
                self.hostname,
                self.username,
                self.password or None,
                port=self.port,
                key_file=self.key_file,
                timeout=float(self.timeout),
                netns=self.netns,
                options=self.options,
                extra=self.netmiko_args,
            )
        )
        self.session_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(6)}"
        default = f"$HOME/.local/state/napalm-frr/{self.pathspace or 'default'}"
        state_expr = shlex.quote(self.state_dir) if self.state_dir else f'"{default}"'
        # the working directory and the vtysh check in one round trip: the check runs only
        # once the executables passed the checks of st.prepare
        mark = f"@@NAPALM-FRR-{secrets.token_hex(8)}@@"
        script = (
            f"( {st.prepare(state_expr, self.session_id, [self.vtysh_bin, self.reload_bin])}"
            f") || exit $?\necho {mark}\n{self._vtysh('-c', 'show version')} 2>&1"
        )
        res = self._run(script)
        prepared, found, version = res.stdout.partition(f"{mark}\n")
        if not found:
            self.close()
            raise ConnectionException(
                f"FRR driver on {self._name()}: unsafe or unusable working directory or "
                f"executable: {(res.stdout + res.stderr).strip()[:300]}"
            )
        self._state = prepared.strip().splitlines()[-1] if prepared.strip() else ""
        if not _SAFE_PATH.fullmatch(self._state):
            self.close()
            raise ConnectionException(
                f"FRR driver on {self._name()}: state directory {self._state!r} has characters "
                "the driver does not quote-check; set optional_args state_dir"
            )
        if res.rc != 0:
            self.close()
            raise ConnectionException(
                f"FRR on {self._name()} does not answer vtysh "
                f"(are the daemons running, is the pathspace right?): "
                f"{(version or res.stderr).strip()[:300]}"
            )

    def close(self) -> None:
        if self._transport is not None:
            if self._state and self.session_id:
                # on a dead connection the router clears the directory after a day
                with contextlib.suppress(
                    ConnectionException, ConnectionClosedException, CommandTimeoutException
                ):
                    self._run(st.remove_session(self._state, self.session_id))
            self._transport.close()
            self._transport = None

    def is_alive(self) -> dict[str, bool]:
        return {"is_alive": self._transport is not None and self._transport.alive()}

    # ------------------------------------------------------------------ cli

    def cli(self, commands: list[str], encoding: str = "text") -> dict[str, str | dict[str, Any]]:
        if encoding not in ("text", "json"):
            raise NotImplementedError(f"cli encoding {encoding!r}: use 'text' or 'json'")
        unique = list(dict.fromkeys(commands))
        sent = [
            c if encoding == "text" or c.rstrip().endswith(" json") else c.rstrip() + " json"
            for c in unique
        ]
        outputs = self._queries([Query(c, self._vtysh("-c", c)) for c in sent])
        out: dict[str, str | dict[str, Any]] = {}
        for command, result in zip(unique, outputs, strict=True):
            if result.rc != 0:
                raise CommandErrorException(
                    f"{self._name()}: command {command!r} failed: {result.text.strip()[:300]}"
                )
            out[command] = g.loads(result.text, {}) if encoding == "json" else result.text
        return out

    def _show_json(self, commands: list[str]) -> dict[str, Any]:
        """``cli(commands, encoding="json")`` with one vtysh start for all of them where the
        answer splits exactly: each vtysh start costs the router about 50 ms of CPU whatever
        it runs, and several ``-c`` in one start cost about the same as one.

        vtysh prints the outputs back to back and stops at the first command that fails, so
        they are told apart as JSON documents: taken only when the start succeeded and
        printed exactly one document per command. Commands that may print several documents
        (``vrf all`` on FRR 8.4: one per VRF), and any other answer (a failure, a command
        that printed nothing) go through :meth:`cli`, one start each, as before. Private
        (lbauto's verification calls it): NAPALM's conformance suite allows no public method
        beyond NetworkDriver's."""
        sent = {c: _json_command(c) for c in commands}
        unique = list(dict.fromkeys(sent.values()))
        if len(unique) > 1 and not any(" vrf all" in c for c in unique):
            args = [a for c in unique for a in ("-c", c)]
            (out,) = self._queries([Query(" + ".join(unique), self._vtysh(*args))])
            documents = g.loads_all(out.text) if out.rc == 0 else []
            if len(documents) == len(unique) and all(isinstance(d, dict | list) for d in documents):
                by_sent = dict(zip(unique, documents, strict=True))
                return {c: by_sent[sent[c]] for c in commands}
        return self.cli(commands, encoding="json")

    # ------------------------------------------------------------------ getters

    def _rundir(self) -> str:
        return f"/var/run/frr{'/' + self.pathspace if self.pathspace else ''}"

    def get_facts(self) -> dict[str, Any]:
        pidfile = shlex.quote(self._rundir() + "/zebra.pid")
        version, startup, running, ifaces, up = self._queries(
            [
                self._vq("show version"),
                Query("startup-config", f"cat {shlex.quote(self.startup_path)}"),
                self._vq("show running-config no-header"),
                self._vq("show interface vrf all json"),
                Query("zebra-uptime", f'ps -o etimes= -p "$(cat {pidfile})"'),
            ]
        )
        os_version, _ = parse_version(version.text)
        host = g.hostname(startup.text if startup.rc == 0 else "", running.text)
        return {
            "uptime": g.uptime(up.text) if up.rc == 0 else -1.0,
            "vendor": "FRRouting",
            "os_version": os_version,
            "serial_number": "",
            "model": "FRR",
            "hostname": host,
            "fqdn": host,
            "interface_list": sorted(g.loads(ifaces.text, {})),
        }

    def _interfaces_json(self) -> dict[str, Any]:
        data = g.loads(self._one(self._vq("show interface vrf all json")), {})
        return data if isinstance(data, dict) else {}

    def get_interfaces(self) -> dict[str, dict[str, Any]]:
        return g.interfaces(self._interfaces_json())

    def get_interfaces_ip(self) -> dict[str, dict[str, dict[str, dict[str, int]]]]:
        return g.interfaces_ip(self._interfaces_json())

    def get_interfaces_counters(self) -> dict[str, dict[str, int]]:
        return g.interfaces_counters(g.loads(self._one(Query("ip-link", "ip -j -s link show")), []))

    def get_arp_table(self, vrf: str = "") -> list[dict[str, Any]]:
        where = f" vrf {shlex.quote(_checked(vrf, _SAFE_NAME, 'vrf'))}" if vrf else ""
        text = self._one(Query(f"ip-neigh4{where}", f"ip -j -s -4 neigh show{where}"))
        return g.neighbors(g.loads(text, []), 4)

    def get_ipv6_neighbors_table(self) -> list[dict[str, Any]]:
        return g.neighbors(g.loads(self._one(Query("ip-neigh6", "ip -j -s -6 neigh show")), []), 6)

    def get_bgp_neighbors(self) -> dict[str, dict[str, Any]]:
        out = self._queries([self._vq("show bgp vrf all neighbors json")])[0]
        if out.rc != 0:  # bgpd not running: no BGP at all
            return {}
        return g.bgp_neighbors(g.loads(out.text, {}))

    def get_bgp_neighbors_detail(self, neighbor_address: str = "") -> dict[str, Any]:
        out = self._queries([self._vq("show bgp vrf all neighbors json")])[0]
        if out.rc != 0:
            return {}
        return g.bgp_neighbors_detail(g.loads(out.text, {}), neighbor_address)

    def get_bgp_config(self, group: str = "", neighbor: str = "") -> dict[str, dict[str, Any]]:
        return g.bgp_config(self._running(), group, neighbor)

    def get_network_instances(self, name: str = "") -> dict[str, Any]:
        ifaces, vrfs = self._queries(
            [self._vq("show interface vrf all json"), Query("ip-vrf", "ip -j link show type vrf")]
        )
        result = g.network_instances(g.loads(ifaces.text, {}), g.loads(vrfs.text, []))
        return {k: v for k, v in result.items() if k == name} if name else result

    def get_lldp_neighbors(self) -> dict[str, list[dict[str, str]]]:
        # FRR has no LLDP: neighbors come from lldpd when it runs on the router, else none.
        out = self._queries([Query("lldpctl", "lldpctl -f json")])[0]
        return g.lldp_neighbors(g.loads(out.text, {})) if out.rc == 0 else {}

    def get_environment(self) -> dict[str, Any]:
        cpu = "grep '^cpu[0-9]' /proc/stat; sleep 0.2; echo --; grep '^cpu[0-9]' /proc/stat"
        thermal = (
            "for z in /sys/class/thermal/thermal_zone*; do "
            '[ -r "$z/temp" ] && echo "$(cat "$z/type") $(cat "$z/temp")"; done; true'
        )
        mem, cpus, temps = self._queries(
            [
                Query("meminfo", "cat /proc/meminfo"),
                Query("cpu-sample", cpu),
                Query("thermal", thermal),
            ]
        )
        return g.environment(mem.text, cpus.text, temps.text)

    def get_config(
        self,
        retrieve: str = "all",
        full: bool = False,
        sanitized: bool = False,
        format: str = "text",  # NAPALM's argument name
    ) -> dict[str, str]:
        if format != "text":
            raise NotImplementedError("FRR config is text only")
        if retrieve not in ("all", "running", "startup", "candidate"):
            raise ValueError(f"retrieve={retrieve!r}: use all, running, startup or candidate")
        out = {"running": "", "startup": "", "candidate": ""}
        if retrieve in ("all", "running"):
            out["running"] = self._running()
        if retrieve in ("all", "startup"):
            # FRR's own `show startup-config` prints nothing for a pathspace instance (8.4):
            # the integrated config file is read directly; no file means no startup config.
            res = self._queries([Query("startup-config", f"cat {shlex.quote(self.startup_path)}")])
            out["startup"] = res[0].text if res[0].rc == 0 else ""
        if retrieve in ("all", "candidate"):
            out["candidate"] = self._candidate or ""
        if sanitized:
            out = {k: sanitize(v) for k, v in out.items()}
        return out

    def _running_query(self) -> Query:
        return self._vq("show running-config no-header")

    def _running(self) -> str:
        return self._one(self._running_query())

    def get_route_to(
        self, destination: str = "", protocol: str = "", longer: bool = False
    ) -> dict[str, list[dict[str, Any]]]:
        if destination:
            try:
                net = ipaddress.ip_network(destination, strict=False)
            except ValueError as exc:
                raise CommandErrorException(f"invalid destination {destination!r}") from exc
            families = [(net.version, str(net) if "/" in destination else str(net.network_address))]
        else:
            families = [(4, ""), (6, "")]
        queries = []
        for version, dest in families:
            words = ["show", "ipv6" if version == 6 else "ip", "route", "vrf", "all"]
            if dest:
                words.append(dest)
                if longer:
                    words.append("longer-prefixes")
            queries.append(self._vq(" ".join([*words, "json"])))
        result: dict[str, list[dict[str, Any]]] = {}
        for query, out in zip(queries, self._queries(queries), strict=True):
            if out.rc != 0:
                raise CommandErrorException(f"{self._name()}: {query.key!r} failed")
            for vrf_routes in _per_vrf(g.loads_all(out.text)):
                for prefix, routes in routes_from_json(vrf_routes, protocol).items():
                    result.setdefault(prefix, []).extend(routes)
        return result

    # ------------------------------------------------------------------ candidates

    def _load(self, filename: str | None, config: str | None, replace: bool) -> None:
        exc_type = ReplaceConfigException if replace else MergeConfigException
        if filename is None and config is None:
            raise exc_type("give a filename or a config to load")
        text = Path(filename).read_text() if filename is not None else str(config)
        if not text.endswith("\n"):
            text += "\n"
        cand = shlex.quote(self._session_path("candidate.conf"))
        digest = _digest(text)
        check = "" if digest in self._valid else f" && {self._vtysh_check(cand)}"
        res = self._run(f"umask 077; cat > {cand}{check}", stdin=text)
        if res.rc != 0:
            self._candidate = None
            detail = (res.stdout + res.stderr).strip()
            raise exc_type(f"{self._name()}: candidate rejected by FRR (vtysh -C): {detail[:500]}")
        self._valid.add(digest)
        self._candidate, self._replace = text, replace

    def _vtysh_check(self, quoted_file: str) -> str:
        return f"{shlex.join([self.vtysh_bin, '-C', '-f'])} {quoted_file}"

    def _commit_check(self, candidate: str, quoted_file: str) -> str:
        """The commit's candidate check: the file still holds the text the load checked (its
        sha256, no vtysh start), else (changed, or no sha256sum on the router) ``vtysh -C``."""
        digest = _digest(candidate)
        if digest not in self._valid:
            return self._vtysh_check(quoted_file)
        return (
            f"{{ printf '%s  %s\\n' {digest} {quoted_file} | sha256sum -c >/dev/null 2>&1 || "
            f"{self._vtysh_check(quoted_file)}; }}"
        )

    def load_merge_candidate(self, filename: str | None = None, config: str | None = None) -> None:
        self._load(filename, config, replace=False)

    def load_replace_candidate(
        self, filename: str | None = None, config: str | None = None
    ) -> None:
        self._load(filename, config, replace=True)

    def discard_config(self) -> None:
        # The candidate file stays in the session's private directory until the next load
        # overwrites it or close() removes the directory: nothing reads it without a load
        # (commit and compare need self._candidate), and a dry run ends in a discard, so
        # removing it cost every dry-run diff a round trip.
        self._candidate = None
        self._replace = False

    def compare_config(self) -> str:
        if self._candidate is None:
            return ""
        if not self._replace and static_only(self._candidate):
            # one vtysh start instead of a running-config read plus frr-reload (a Python
            # start and two more vtysh runs) where the diff is exactly computable here
            res = self._run(self._vtysh("-c", "show running-config no-header"))
            if res.rc != 0:
                raise CommandErrorException(
                    f"{self._name()}: reading the running config failed (rc {res.rc}): "
                    f"{res.stderr[:300]}"
                )
            output = static_merge_diff(self._candidate, res.stdout)
            return format_reload_diff(output, res.stdout)
        run, cand, new = (
            shlex.quote(self._session_path(n))
            for n in ("running.conf", "candidate.conf", "new.conf")
        )
        target = cand if self._replace else new
        script = (
            f"umask 077; {self._vtysh('-c', 'show running-config no-header')} > {run} || exit 3; "
            f"{'' if self._replace else f'cat {run} {cand} > {new}; '}"
            f"cat {run}; echo @@SPLIT@@; "
            f"{shlex.quote(self.reload_bin)} --test --input {run} {target} "
            f"2>{shlex.quote(self._session_path('reload-test.log'))}"
        )
        res = self._run(script)
        running, _, output = res.stdout.partition("@@SPLIT@@\n")
        if res.rc != 0:
            raise CommandErrorException(
                f"{self._name()}: frr-reload --test failed (rc {res.rc}): {res.stderr[:300]}"
            )
        return format_reload_diff(output, running)

    # ------------------------------------------------------------------ commits

    def _merge_script(self, candidate: str) -> str:
        """Apply a merge candidate in waves (see :func:`napalm_frr.parse.split_waves`)."""
        waves = split_waves(candidate)
        if len(waves) == 1:
            return self._vtysh("-f", self._session_path("candidate.conf"))
        steps = []
        for i, text in enumerate(waves):
            wave = self._session_path(f"candidate.wave{i}.conf")
            steps.append(
                f"printf '%s' {shlex.quote(text)} > {shlex.quote(wave)} && "
                + self._vtysh("-f", wave)
            )
        return " && ".join(steps)

    def _restore(self, commit_id: str) -> str:
        return self._reload(f"{self._state}/commits/{commit_id}/before.conf")

    def commit_config(self, message: str = "", revert_in: int | None = None) -> None:
        if message:
            raise NotImplementedError("commit messages are not supported by FRR")
        if self._candidate is None:
            raise CommitError(f"{self._name()}: no candidate loaded, nothing to commit")
        if revert_in is not None and int(revert_in) < 1:
            raise CommitError("revert_in must be at least 1 second")
        commit_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(4)}"
        cand = self._session_path("candidate.conf")
        apply = self._reload(cand) if self._replace else self._merge_script(self._candidate)
        restore = self._restore(commit_id)
        timer = None
        if revert_in is not None:
            timer = st.timer(
                state=self._state,
                commit_id=commit_id,
                session=self.session_id,
                seconds=int(revert_in),
                restore_before=restore,
            )
        script = st.commit(
            state=self._state,
            commit_id=commit_id,
            session=self.session_id,
            check=self._commit_check(self._candidate, shlex.quote(cand)),
            running=self._vtysh("-c", "show running-config no-header"),
            apply=apply,
            restore_before=restore,
            timer=timer,
        )
        res = self._run(script)
        if res.rc == st.RC_PENDING:
            raise CommitError(
                f"{self._name()}: Pending commit confirm already in process! "
                f"({self._describe_pending(res.stdout)}; confirm_commit or rollback it first)"
            )
        if res.rc == 0:
            self._candidate, self._replace = None, False
            self.commit_id = commit_id
            return
        self._candidate, self._replace = None, False
        detail = (res.stdout + res.stderr).strip()[:500]
        reason = {
            3: "candidate rejected by FRR (vtysh -C), router unchanged",
            4: "cannot save the rollback point, router unchanged",
            5: "applying the candidate failed; the previous config was restored",
            7: "the commit-confirm timer did not start; the previous config was restored",
            st.RC_LOCK: "another session holds the router's driver lock for over 60 s",
        }.get(res.rc, f"commit failed (rc {res.rc})")
        raise CommitError(f"{self._name()}: {reason}: {detail}")

    def _describe_pending(self, text: str) -> str:
        parts = text.split()
        if len(parts) < 3:
            return "a commit of another session is pending"
        who = "this session" if parts[2] == self.session_id else f"session {parts[2]}"
        left = max(0, int(parts[1]) - int(time.time())) if parts[1].isdigit() else -1
        return f"commit {parts[0]} of {who}, reverts in {left} s"

    def has_pending_commit(self) -> bool:
        """True while a commit-confirm timer of any session (this driver's or another's) is
        armed on the router; details in :attr:`pending_commit`."""
        return self._seen_pending(self._run(st.pending(self._state)).stdout)

    def _pending_and_running(self) -> tuple[bool, str]:
        """:meth:`has_pending_commit` and then the running config (``get_config``'s), in one
        round trip: what an observation of the router reads (lbauto's; private like
        :meth:`_show_json`)."""
        pending, running = self._queries(
            [Query("pending-commit", st.pending(self._state)), self._running_query()]
        )
        if running.rc != 0:
            raise CommandErrorException(
                f"{self._name()}: 'show running-config no-header' failed (rc {running.rc}): "
                f"{running.text.strip()[:300]}"
            )
        return self._seen_pending(pending.text), running.text

    def _seen_pending(self, text: str) -> bool:
        parts = text.split()
        if len(parts) < 3:
            self.pending_commit = None
            return False
        self.pending_commit = {
            "commit_id": parts[0],
            "deadline": int(parts[1]) if parts[1].isdigit() else -1,
            "session": parts[2],
            "mine": parts[2] == self.session_id,
        }
        return True

    def confirm_commit(self) -> None:
        if self.commit_id is None:
            raise CommitError(
                f"{self._name()}: No pending commit-confirm found for this session "
                "(it made no commit; name another session's commit with commit_id to confirm it)"
            )
        res = self._run(st.confirm(self._state, self.commit_id))
        if res.rc == st.RC_NOT_PENDING:
            raise CommitError(
                f"{self._name()}: No pending commit-confirm found for commit {self.commit_id} "
                "(not committed with revert_in, already confirmed, or the router already "
                "reverted it)"
            )
        if res.rc == st.RC_OTHER_PENDING:
            raise CommitError(
                f"{self._name()}: commit {self.commit_id} is not the pending one "
                f"({self._describe_pending(res.stdout)}); not confirming another session's commit"
            )
        if res.rc != 0:
            raise CommitError(f"{self._name()}: confirm failed (rc {res.rc}): {res.stdout[:300]}")

    def rollback(self) -> None:
        """Undo this session's last commit (or the one named by ``commit_id``). Refuses, with
        :class:`CommitError`, when there is none, when a later commit is in effect, when it was
        already rolled back or reverted, or when the running config changed since."""
        if self.commit_id is None:
            raise CommitError(
                f"{self._name()}: nothing to roll back: this session made no commit "
                "(name a recorded commit with optional_args commit_id)"
            )
        cid = self.commit_id
        res = self._run(
            st.rollback(
                state=self._state,
                commit_id=cid,
                running=self._vtysh("-c", "show running-config no-header"),
                restore_before=self._restore(cid),
            )
        )
        detail = res.stdout.split()
        if res.rc == 0:
            return
        if res.rc == st.RC_UNKNOWN:
            raise CommitError(f"{self._name()}: commit {cid} is not recorded on this router")
        if res.rc == st.RC_NOT_TOP:
            state = detail[0] if len(detail) == 2 else "?"
            top = detail[-1] if detail else "none"
            if state in ("rolled-back", "reverted"):
                raise CommitError(f"{self._name()}: commit {cid} was already {state}")
            raise CommitError(
                f"{self._name()}: refusing to roll back commit {cid}: commit {top} was made "
                "after it and is still in effect (roll that one back first)"
            )
        if res.rc == st.RC_DRIFT:
            raise CommitError(
                f"{self._name()}: refusing to roll back commit {cid}: the running config "
                f"changed since that commit ({res.stdout.strip()} lines differ); restoring "
                "its rollback point would undo those changes too"
            )
        raise CommitError(
            f"{self._name()}: rollback of {cid} failed: {(res.stdout + res.stderr).strip()[:500]}"
        )


def _json_command(command: str) -> str:
    """The command :meth:`FRRDriver.cli` sends for ``encoding="json"``."""
    return command if command.rstrip().endswith(" json") else command.rstrip() + " json"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _per_vrf(documents: list[Any]) -> list[dict[str, Any]]:
    """``show ip route vrf all ... json``: one document per VRF (FRR 8.4), or one document
    keyed by VRF name (newer releases); each route carries its ``vrfName`` either way."""
    out: list[dict[str, Any]] = []
    for data in documents:
        if not isinstance(data, dict):
            continue
        if data and all(isinstance(v, dict) for v in data.values()):
            out.extend(v for v in data.values() if isinstance(v, dict))
        else:
            out.append(data)
    return out
