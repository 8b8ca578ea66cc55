"""NAPALM driver for FRRouting: ``vtysh`` over SSH (netmiko ``linux``) or locally.

Candidates are FRR config text. The driver keeps its working files in a state directory on
the router (one per FRR pathspace): the uploaded candidate, the rollback point saved before
each commit, and the pid file of the commit-confirm timer. The timer is a detached process on
the router, so a commit made with ``revert_in`` is undone by the router itself if
``confirm_commit`` never arrives, even when lbauto or its SSH session dies.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from pathlib import Path
from typing import Any

from napalm.base import NetworkDriver
from napalm.base.exceptions import (
    CommandErrorException,
    CommitError,
    ConnectionClosedException,
    ConnectionException,
    MergeConfigException,
    ReplaceConfigException,
)

from napalm_frr.parse import (
    format_reload_diff,
    parse_version,
    routes_from_json,
    sanitize,
    split_waves,
)
from napalm_frr.transport import LocalTransport, Result, SshTransport, Transport

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./-]{1,200}$")
_SPLIT = "@@NAPALM-FRR-SPLIT@@"
#: Options the driver understands; anything else is passed to netmiko (ssh transport).
_OWN_OPTIONS = frozenset(
    {"transport", "pathspace", "netns", "port", "key_file", "state_dir", "vtysh", "frr_reload"}
)


def _checked(value: Any, pattern: re.Pattern[str], what: str) -> str:
    text = str(value)
    if not pattern.fullmatch(text):
        raise ConnectionException(f"invalid {what} {text!r}: use letters, digits, '_', '.', '-'")
    return text


class FRRDriver(NetworkDriver):  # type: ignore[misc]
    """NAPALM driver for FRR. optional_args: ``transport`` (``ssh``/``local``), ``pathspace``,
    ``netns`` (local only), ``port``, ``key_file``, ``state_dir``, ``vtysh``, ``frr_reload``."""

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
        if self.transport_name not in ("ssh", "local"):
            raise ConnectionException(
                f"unknown FRR transport {self.transport_name!r}: use 'ssh' or 'local'"
            )
        self.pathspace = (
            _checked(opts["pathspace"], _SAFE_NAME, "pathspace") if opts.get("pathspace") else None
        )
        self.netns = _checked(opts["netns"], _SAFE_NAME, "netns") if opts.get("netns") else None
        self.port = int(opts.get("port", 22))
        self.key_file = str(opts["key_file"]) if opts.get("key_file") else None
        default_dir = f"/var/tmp/napalm-frr/{self.pathspace or 'default'}"
        self.state_dir = _checked(opts.get("state_dir", default_dir), _SAFE_PATH, "state_dir")
        self.vtysh_bin = _checked(opts.get("vtysh", "vtysh"), re.compile(r"[\w./-]+"), "vtysh")
        self.reload_bin = _checked(
            opts.get("frr_reload", "/usr/lib/frr/frr-reload.py"), _SAFE_PATH, "frr_reload"
        )
        self.netmiko_args = {k: v for k, v in opts.items() if k not in _OWN_OPTIONS}
        self._transport: Transport | None = None
        self._candidate: str | None = None
        self._replace = False
        self._version_text = ""

    # ------------------------------------------------------------------ plumbing

    def _path(self, name: str) -> str:
        return f"{self.state_dir}/{name}"

    def _vtysh(self, *args: str) -> str:
        ps = ["-N", self.pathspace] if self.pathspace else []
        return shlex.join([self.vtysh_bin, *ps, *args])

    def _reload(self, filename: str) -> str:
        ps = ["--pathspace", self.pathspace] if self.pathspace else []
        return shlex.join([self.reload_bin, "--reload", *ps, filename])

    def _run(self, command: str, stdin: str | None = None) -> Result:
        if self._transport is None:
            raise ConnectionClosedException(f"FRR driver for {self.hostname} is not open")
        return self._transport.run(command, stdin=stdin, timeout=float(self.timeout))

    def _name(self) -> str:
        return f"{self.hostname}{'/' + self.pathspace if self.pathspace else ''}"

    # ------------------------------------------------------------------ connection

    def open(self) -> None:
        if self.transport_name == "local":
            self._transport = LocalTransport(self.netns)
        else:
            self._transport = SshTransport(
                self.hostname,
                self.username,
                self.password or None,
                port=self.port,
                key_file=self.key_file,
                timeout=float(self.timeout),
                extra=self.netmiko_args,
            )
        res = self._run(
            f"mkdir -p {shlex.quote(self.state_dir)} && {self._vtysh('-c', 'show version')}"
        )
        if res.rc != 0:
            self.close()
            raise ConnectionException(
                f"FRR on {self._name()} does not answer vtysh "
                f"(are the daemons running, is the pathspace right?): "
                f"{(res.stderr or res.stdout).strip()[:300]}"
            )
        self._version_text = res.stdout

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def is_alive(self) -> dict[str, bool]:
        return {"is_alive": self._transport is not None and self._transport.alive()}

    # ------------------------------------------------------------------ getters

    def cli(self, commands: list[str], encoding: str = "text") -> dict[str, str | dict[str, Any]]:
        if encoding not in ("text", "json"):
            raise NotImplementedError(f"cli encoding {encoding!r}: use 'text' or 'json'")
        sent = [
            c if encoding == "text" or c.rstrip().endswith(" json") else c.rstrip() + " json"
            for c in commands
        ]
        script = "; ".join(
            f'echo {_SPLIT}; {self._vtysh("-c", c)} 2>&1; echo "{_SPLIT} $?"' for c in sent
        )
        res = self._run(script)
        chunks = res.stdout.split(_SPLIT + "\n")[1:]
        out: dict[str, str | dict[str, Any]] = {}
        for command, chunk in zip(commands, chunks, strict=False):
            text, _, tail = chunk.rpartition(_SPLIT + " ")
            if tail.strip() != "0":
                raise CommandErrorException(
                    f"{self._name()}: command {command!r} failed: {text.strip()[:300]}"
                )
            out[command] = json.loads(text) if encoding == "json" else text
        if len(out) != len(commands):
            raise CommandErrorException(f"{self._name()}: incomplete output from vtysh")
        return out

    def _json(self, command: str) -> Any:
        value = self.cli([command], encoding="json")[command]
        return value

    def get_facts(self) -> dict[str, Any]:
        rundir = f"/var/run/frr{'/' + self.pathspace if self.pathspace else ''}"
        script = (
            f"{self._vtysh('-c', 'show version')}; echo {_SPLIT}; "
            f"{self._vtysh('-c', 'show interface json')}; echo {_SPLIT}; "
            f'ps -o etimes= -p "$(cat {shlex.quote(rundir + "/zebra.pid")} 2>/dev/null)" '
            "2>/dev/null || true"
        )
        res = self._run(script)
        parts = res.stdout.split(_SPLIT + "\n")
        if len(parts) != 3:
            raise CommandErrorException(f"{self._name()}: unexpected output for facts")
        version, host = parse_version(parts[0])
        try:
            interfaces = sorted(json.loads(parts[1]))
        except ValueError:
            interfaces = []
        uptime = float(parts[2].strip()) if parts[2].strip().isdigit() else -1.0
        return {
            "uptime": uptime,
            "vendor": "FRRouting",
            "os_version": version,
            "serial_number": "",
            "model": "FRR",
            "hostname": host,
            "fqdn": host,
            "interface_list": interfaces,
        }

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
            res = self._run(self._vtysh("-c", "show startup-config"))
            out["startup"] = res.stdout if res.rc == 0 else ""
        if retrieve in ("all", "candidate"):
            out["candidate"] = self._candidate or ""
        if sanitized:
            out = {k: sanitize(v) for k, v in out.items()}
        return out

    def _running(self) -> str:
        res = self._run(self._vtysh("-c", "show running-config no-header"))
        if res.rc != 0:
            raise CommandErrorException(
                f"{self._name()}: cannot read the running config: {res.stderr.strip()[:300]}"
            )
        return res.stdout

    def get_route_to(
        self, destination: str = "", protocol: str = "", longer: bool = False
    ) -> dict[str, list[dict[str, Any]]]:
        if destination:
            try:
                net = ipaddress.ip_network(destination, strict=False)
            except ValueError as exc:
                raise CommandErrorException(f"invalid destination {destination!r}") from exc
            families = [(net.version, destination)]
        else:
            families = [(4, ""), (6, "")]
        result: dict[str, list[dict[str, Any]]] = {}
        for version, dest in families:
            words = ["show", "ipv6" if version == 6 else "ip", "route"]
            if dest:
                words.append(dest)
                if longer:
                    words.append("longer-prefixes")
            result.update(routes_from_json(self._json(" ".join(words)), protocol))
        return result

    # ------------------------------------------------------------------ candidates

    def _load(self, filename: str | None, config: str | None, replace: bool) -> None:
        exc_type = ReplaceConfigException if replace else MergeConfigException
        if filename is None and config is None:
            raise exc_type("give a filename or a config to load")
        text = Path(filename).read_text() if filename is not None else str(config)
        if not text.endswith("\n"):
            text += "\n"
        cand = shlex.quote(self._path("candidate.conf"))
        res = self._run(
            f"cat > {cand} && {shlex.join([self.vtysh_bin, '-C', '-f'])} {cand}", stdin=text
        )
        if res.rc != 0:
            self._candidate = None
            detail = (res.stdout + res.stderr).strip()
            raise exc_type(f"{self._name()}: candidate rejected by FRR (vtysh -C): {detail[:500]}")
        self._candidate, self._replace = text, replace

    def load_merge_candidate(self, filename: str | None = None, config: str | None = None) -> None:
        self._load(filename, config, replace=False)

    def load_replace_candidate(
        self, filename: str | None = None, config: str | None = None
    ) -> None:
        self._load(filename, config, replace=True)

    def discard_config(self) -> None:
        self._candidate = None
        self._replace = False
        self._run(f"rm -f {shlex.quote(self._path('candidate.conf'))}")

    def compare_config(self) -> str:
        if self._candidate is None:
            return ""
        run, cand, new = (
            shlex.quote(self._path(n)) for n in ("running.conf", "candidate.conf", "new.conf")
        )
        target = cand if self._replace else new
        script = (
            f"{self._vtysh('-c', 'show running-config no-header')} > {run} || exit 3; "
            f"{'' if self._replace else f'cat {run} {cand} > {new}; '}"
            f"cat {run}; echo {_SPLIT}; "
            f"{shlex.quote(self.reload_bin)} --test --input {run} {target} "
            f"2>{shlex.quote(self._path('reload-test.log'))}"
        )
        res = self._run(script)
        running, _, output = res.stdout.partition(_SPLIT + "\n")
        if res.rc != 0:
            raise CommandErrorException(
                f"{self._name()}: frr-reload --test failed (rc {res.rc}): {res.stderr[:300]}"
            )
        return format_reload_diff(output, running)

    # ------------------------------------------------------------------ commits

    def _timer_script(self, seconds: int) -> str:
        pending = shlex.quote(self._path("pending.pid"))
        reverting = shlex.quote(self._path("reverting.pid"))
        log = shlex.quote(self._path("revert.log"))
        # The timer is its own session (setsid), so confirm_commit can end it and its sleep
        # with one signal to the process group; its pid file names that group. It owns the
        # rollback only after renaming pending.pid, and only if the file still names it:
        # confirm_commit renames the same file first, so exactly one of them wins.
        body = (
            f"echo $$ > {pending}.new && mv {pending}.new {pending}; sleep {seconds}; "
            f'[ "$(cat {pending} 2>/dev/null)" = "$$" ] || exit 0; '
            f"mv {pending} {reverting} 2>/dev/null || exit 0; "
            f"{self._reload(self._path('rollback.conf'))} > {log} 2>&1; "
            f'echo "reverted after {seconds} s rc=$?" >> {log}; rm -f {reverting}'
        )
        return (
            f"rm -f {pending}; setsid sh -c {shlex.quote(body)} </dev/null >/dev/null 2>&1 & "
            # return only once the timer is armed, so has_pending_commit sees it at once
            f"n=0; while [ ! -f {pending} ] && [ $n -lt 500 ]; do sleep 0.01; n=$((n+1)); done; "
            f"test -f {pending} || "
            f"{{ {self._reload(self._path('rollback.conf'))} >/dev/null 2>&1; exit 7; }}"
        )

    def _merge_script(self, candidate: str) -> str:
        """Apply a merge candidate in waves (see :func:`napalm_frr.parse.split_waves`)."""
        waves = split_waves(candidate)
        if len(waves) == 1:
            return self._vtysh("-f", self._path("candidate.conf"))
        steps = []
        for i, text in enumerate(waves):
            wave = shlex.quote(self._path(f"candidate.wave{i}.conf"))
            steps.append(
                f"printf '%s' {shlex.quote(text)} > {wave} && "
                f"{self._vtysh('-f', self._path(f'candidate.wave{i}.conf'))}"
            )
        return "{ " + " && ".join(steps) + "; }"

    def commit_config(self, message: str = "", revert_in: int | None = None) -> None:
        if message:
            raise NotImplementedError("commit messages are not supported by FRR")
        if self._candidate is None:
            raise CommitError(f"{self._name()}: no candidate loaded, nothing to commit")
        if revert_in is not None and int(revert_in) < 1:
            raise CommitError("revert_in must be at least 1 second")
        cand = shlex.quote(self._path("candidate.conf"))
        rollback = shlex.quote(self._path("rollback.conf"))
        log = shlex.quote(self._path("apply.log"))
        apply = (
            self._reload(self._path("candidate.conf"))
            if self._replace
            else self._merge_script(self._candidate)
        )
        pending = shlex.quote(self._path("pending.pid"))
        script = (
            # a second commit while one awaits confirmation would move its rollback point
            f'test -f {pending} && kill -0 "$(cat {pending})" 2>/dev/null && exit 6; '
            f"{shlex.join([self.vtysh_bin, '-C', '-f'])} {cand} > {log} 2>&1 "
            f"|| {{ cat {log}; exit 3; }}; "
            f"{self._vtysh('-c', 'show running-config no-header')} > {rollback}.new || exit 4; "
            f"mv {rollback}.new {rollback}; "
            f"{apply} > {log} 2>&1 || {{ "
            f"{self._reload(self._path('rollback.conf'))} >/dev/null 2>&1; "
            f"cat {log}; exit 5; }}; "
            + (self._timer_script(int(revert_in)) if revert_in is not None else "true")
        )
        res = self._run(script)
        if res.rc == 6:
            raise CommitError(
                f"{self._name()}: Pending commit confirm already in process! "
                "(confirm_commit or rollback it first)"
            )
        self._candidate, self._replace = None, False
        if res.rc == 0:
            return
        detail = (res.stdout + res.stderr).strip()[:500]
        reason = {
            3: "candidate rejected by FRR (vtysh -C), router unchanged",
            4: "cannot save the rollback point, router unchanged",
            5: "applying the candidate failed; the previous config was restored",
            7: "the commit-confirm timer did not start; the previous config was restored",
        }.get(res.rc, f"commit failed (rc {res.rc})")
        raise CommitError(f"{self._name()}: {reason}: {detail}")

    def has_pending_commit(self) -> bool:
        pending = shlex.quote(self._path("pending.pid"))
        res = self._run(
            f'test -f {pending} && kill -0 "$(cat {pending})" 2>/dev/null && echo yes '
            f"|| {{ test -f {pending} && rm -f {pending}; echo no; }}"
        )
        return res.stdout.strip() == "yes"

    def confirm_commit(self) -> None:
        pending = shlex.quote(self._path("pending.pid"))
        taken = shlex.quote(self._path("confirm.pid"))
        res = self._run(
            f"mv {pending} {taken} 2>/dev/null || exit 3; "
            f'kill -TERM -"$(cat {taken})" 2>/dev/null; rm -f {taken}'
        )
        if res.rc == 3:
            raise CommitError(
                f"{self._name()}: No pending commit-confirm found (not committed with "
                "revert_in, already confirmed, or the router already reverted it)"
            )

    def rollback(self) -> None:
        pending = shlex.quote(self._path("pending.pid"))
        taken = shlex.quote(self._path("cancel.pid"))
        reverting = shlex.quote(self._path("reverting.pid"))
        rollback = shlex.quote(self._path("rollback.conf"))
        log = shlex.quote(self._path("rollback.log"))
        script = (
            f"if mv {pending} {taken} 2>/dev/null; then "
            f'kill -TERM -"$(cat {taken})" 2>/dev/null; rm -f {taken}; fi; '
            # a timer already reverting restores the same rollback point: let it finish
            f"n=0; while [ -f {reverting} ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n+1)); done; "
            f"test -f {rollback} || exit 3; "
            f"{self._reload(self._path('rollback.conf'))} > {log} 2>&1 || {{ cat {log}; exit 4; }}"
        )
        res = self._run(script)
        if res.rc == 3:
            raise CommitError(f"{self._name()}: nothing to roll back (no commit was made)")
        if res.rc != 0:
            raise CommitError(
                f"{self._name()}: rollback failed: {(res.stdout + res.stderr).strip()[:500]}"
            )
