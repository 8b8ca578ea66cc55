"""The shared lock and journal in a real etcd (Debian's ``etcd-server``, started by the tests).

Real ``lbauto apply`` processes against a real agent (nftables in a namespace); the lock
holder of the serialisation tests is lbauto's own lock code in a process of its own, so it
can be held as long as the test needs and killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from etcd3gw.client import Etcd3Client

from lbauto.core.model import EtcdBackend
from lbauto.errors import BackendError, JournalError, LockedError
from lbauto.orchestrate.backends._client import EtcdConn
from lbauto.orchestrate.backends.etcd import EtcdStateBackend
from tests.integration.agent_net import Net, network
from tests.integration.etcd_server import EtcdServer, etcd_missing, etcd_server, free_port

pytestmark = pytest.mark.integration

VIP = "192.0.2.10"
TOKEN_ENV = "LBAUTO_ET_TOKEN"
HOLDER = """
import sys
from pathlib import Path
from lbauto.inventory import load_inventory
from lbauto.orchestrate.apply import state_dir
from lbauto.orchestrate.backends import backend_for

inv = load_inventory(Path("."))
with backend_for(inv, state_dir(inv)).lock("apply (holder)"):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes stdin (or kills this process)
"""


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdServer]:
    reason = etcd_missing()
    if reason:
        pytest.skip(reason)  # CI=true: the integration conftest turns this into a failure
    with etcd_server("et") as server:
        yield server


@pytest.fixture(scope="module")
def agent() -> Iterator[Net]:
    if os.geteuid() != 0:
        pytest.skip("the agent's data plane needs root (network namespaces, nftables)")
    with network(dips=2, prefix="et") as net:
        try:
            yield net
        finally:
            net.stop_agent(kill=True)
            shutil.rmtree(net.dir, ignore_errors=True)  # the agent's token, state and log


@pytest.fixture
def net(agent: Net) -> Net:
    with agent.client() as c:
        for address in c.list_vips():
            c.delete_vip(address)
    return agent


def prefix() -> str:
    return f"/lbauto/et-{secrets.token_hex(4)}"


def inventory(
    where: Path,
    api: str,
    dips: tuple[str, ...],
    endpoints: list[str] | None = None,
    key_prefix: str = "",
    ttl: int = 5,
) -> Path:
    where.mkdir(parents=True)
    dip_list = ", ".join(dips)
    (where / "vips.yaml").write_text(
        f"vips:\n  - name: web\n    address: {VIP}\n    dips: [{dip_list}]\n"
    )
    (where / "agents.yaml").write_text(
        f"agents:\n  - name: lb1\n    api: {api}\n    address: 198.51.100.10\n"
        f"    token_env: {TOKEN_ENV}\n"
    )
    if endpoints is not None:
        (where / "lbauto.yaml").write_text(
            f"backend:\n  type: etcd\n  endpoints: [{', '.join(endpoints)}]\n"
            f"  prefix: {key_prefix}\n  lease_ttl: {ttl}\n  timeout: 2\n"
        )
    return where


def env(token: str) -> dict[str, str]:
    return {**os.environ, TOKEN_ENV: token}


def lbauto_apply(cwd: Path, token: str) -> subprocess.CompletedProcess[str]:
    """``lbauto apply`` as an operator runs it, from inside the inventory directory."""
    return subprocess.run(
        [sys.executable, "-m", "lbauto", "apply", "--inventory", ".", "--yes"],
        check=False,
        cwd=cwd,
        env=env(token),
        capture_output=True,
        text=True,
        timeout=120,
    )


class Holder:
    """lbauto's lock code holding an inventory's lock in a process of its own."""

    def __init__(self, cwd: Path, token: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER],
            cwd=cwd,
            env=env(token),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        line = self.proc.stdout.readline()
        if line != "held\n":
            err = self.proc.stderr.read()
            self.close()
            raise AssertionError(f"the lock holder did not take the lock: {err}")

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=20) == 0

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill9()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def agent_vips(net: Net) -> set[str]:
    with net.client() as c:
        return {str(a) for a in c.list_vips()}


def etcd_keys(server: EtcdServer, under: str) -> list[tuple[str, dict[str, object]]]:
    kvs = Etcd3Client(port=server.port).get_prefix(under, sort_order="ascend", sort_target="create")
    return [(str(meta["key"], "utf-8"), json.loads(value)) for value, meta in kvs]


# -------------------------------------------------------------------------------- serialising


def test_two_directories_sharing_an_etcd_prefix_are_serialised(
    etcd: EtcdServer, net: Net, tmp_path: Path
) -> None:
    """The second apply (another working directory, another state directory) is refused with
    the holder's pid, host and since, and the etcd key; it changes nothing. Once the holder
    is done the same apply runs, and its journal is in etcd as well as in its directory."""
    key = prefix()
    dips = (net.dip4["d1"], net.dip4["d2"])
    a = inventory(tmp_path / "ci-runner-1" / "inv", net.api, dips, [etcd.url], key)
    b = inventory(tmp_path / "ci-runner-2" / "inv", net.api, dips, [etcd.url], key)
    holder = Holder(a, net.token)
    try:
        refused = lbauto_apply(b, net.token)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"locked by pid {holder.proc.pid} (" in refused.stderr
        assert f"on {socket.gethostname()}, apply (holder)) since " in refused.stderr
        assert f"etcd key {key}/lock at {etcd.url}" in refused.stderr
        assert agent_vips(net) == set()
        assert not (b / ".lbauto" / "journal.jsonl").exists()
        holder.release()
    finally:
        holder.close()
    done = lbauto_apply(b, net.token)
    assert done.returncode == 0, done.stdout + done.stderr
    assert agent_vips(net) == {VIP}
    local = [json.loads(x) for x in (b / ".lbauto" / "journal.jsonl").read_text().splitlines()]
    shared = etcd_keys(etcd, key + "/journal/")
    assert [v for _, v in shared] == local  # every event, in order, as written locally
    assert local[0]["event"] == "run-start" and local[-1]["event"] == "run-end"
    assert all(k.startswith(f"{key}/journal/") and local[0]["run"] in k for k, _ in shared)
    assert etcd_keys(etcd, key + "/lock") == []  # released at the end of the run
    # the other runner, which has no journal of that run, reads it from etcd
    shown = subprocess.run(
        [sys.executable, "-m", "lbauto", "journal", "-i", ".", "-o", "json"],
        check=True,
        cwd=a,
        capture_output=True,
        text=True,
    )
    doc = json.loads(shown.stdout)
    assert doc["backend"]["lock"] == f"{key}/lock" and doc["events"] == local
    assert not (a / ".lbauto" / "journal.jsonl").exists()


def test_control_local_files_do_not_serialise_two_directories(
    etcd: EtcdServer, net: Net, tmp_path: Path
) -> None:
    """Control for the test above: without the etcd backend, an apply in a second directory
    runs while the first directory's lock is held; that is what the backend is for."""
    dips = (net.dip4["d1"], net.dip4["d2"])
    a = inventory(tmp_path / "ci-runner-1" / "inv", net.api, dips)
    b = inventory(tmp_path / "ci-runner-2" / "inv", net.api, dips)
    holder = Holder(a, net.token)
    try:
        done = lbauto_apply(b, net.token)
        assert done.returncode == 0, done.stdout + done.stderr
        assert agent_vips(net) == {VIP}
    finally:
        holder.close()


def test_a_holder_killed_by_sigkill_blocks_only_until_its_lease_expires(
    etcd: EtcdServer, net: Net, tmp_path: Path
) -> None:
    ttl = 3
    key = prefix()
    dips = (net.dip4["d1"], net.dip4["d2"])
    a = inventory(tmp_path / "a", net.api, dips, [etcd.url], key, ttl)
    b = inventory(tmp_path / "b", net.api, dips, [etcd.url], key, ttl)
    holder = Holder(a, net.token)
    try:
        holder.kill9()
        killed = time.monotonic()
        cfg = EtcdBackend(endpoints=(etcd.url,), prefix=key, lease_ttl=ttl)
        probe = EtcdStateBackend(cfg, tmp_path / "probe")
        with pytest.raises(LockedError, match=f"locked by pid {holder.proc.pid} "), probe.lock():
            pass  # the dead holder's lease is still running
        while etcd_keys(etcd, key + "/lock") and time.monotonic() - killed < ttl + 5:
            time.sleep(0.05)
        gone = time.monotonic() - killed
    finally:
        holder.close()
    # etcd checks for expired leases every 0.5 s; the holder renewed it up to ttl/3 before
    assert ttl - ttl / 3 - 0.5 <= gone <= ttl + 1.5, gone
    done = lbauto_apply(b, net.token)
    assert done.returncode == 0, done.stdout + done.stderr
    assert agent_vips(net) == {VIP}


# ------------------------------------------------------------------------- etcd unreachable


class Tripwire:
    """A TCP listener standing in for the agent: counts every connection lbauto makes."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def tripwire() -> Iterator[Tripwire]:
    t = Tripwire()
    yield t
    t.close()


@pytest.fixture
def router_tripwire() -> Iterator[Tripwire]:
    t = Tripwire()
    yield t
    t.close()


def add_router(inv: Path, port: int) -> None:
    """An FRR router whose management address is a tripwire (lbauto reaches it over SSH)."""
    (inv / "hosts.yaml").write_text(
        f"r1:\n  hostname: 127.0.0.1\n  port: {port}\n  platform: frr\n  username: lbauto\n"
    )


def test_etcd_killed_is_one_clear_error_and_nothing_is_touched(
    etcd: EtcdServer, tripwire: Tripwire, router_tripwire: Tripwire, tmp_path: Path
) -> None:
    """etcd SIGKILLed: apply exits 1 with one line naming the endpoint and the fix; no agent
    or router is contacted, no state directory or journal is written. The control run (the same
    inventory with etcd up) shows the tripwire does catch lbauto going on to the agent."""
    api = f"http://127.0.0.1:{tripwire.port}"
    with etcd_server("et") as dead:
        inv = inventory(tmp_path / "inv", api, ("198.51.100.21",), [dead.url], prefix())
        add_router(inv, router_tripwire.port)
        dead.kill()
        failed = lbauto_apply(inv, "t0ken-t0ken-t0ken-t0ken")
    assert failed.returncode == 1
    line = failed.stderr.strip()
    assert len(line.splitlines()) == 1, failed.stderr
    assert f"etcd backend unreachable ({dead.url}: connection refused)" in line
    assert "nothing was changed" in line and "backend.endpoints in lbauto.yaml" in line
    assert tripwire.hits == 0 and router_tripwire.hits == 0
    assert not (inv / ".lbauto").exists()
    # control: etcd up, the same apply gets past the lock and reaches the "agent"
    (inv / "lbauto.yaml").write_text((inv / "lbauto.yaml").read_text().replace(dead.url, etcd.url))
    reached = lbauto_apply(inv, "t0ken-t0ken-t0ken-t0ken")
    assert reached.returncode == 1, reached.stderr
    assert tripwire.hits >= 1 and router_tripwire.hits >= 1, reached.stderr


def test_no_endpoint_answers_names_every_endpoint(tripwire: Tripwire, tmp_path: Path) -> None:
    api = f"http://127.0.0.1:{tripwire.port}"
    closed = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    inv = inventory(tmp_path / "inv", api, ("198.51.100.21",), closed, prefix())
    failed = lbauto_apply(inv, "t0ken-t0ken-t0ken-t0ken")
    assert failed.returncode == 1
    for url in closed:
        assert f"{url}: connection refused" in failed.stderr
    assert tripwire.hits == 0 and not (inv / ".lbauto").exists()


# -------------------------------------------------------------------- the lock's own guarantees


def test_the_gateway_path_is_found_by_probing_the_version(etcd: EtcdServer) -> None:
    """etcd 3.4 (Debian 12) and 3.5 (Debian 13) serve the JSON gateway at /v3/."""
    conn = EtcdConn(EtcdBackend(endpoints=(etcd.url,), prefix="/lbauto/x"))
    conn.connect()
    major, minor = (int(p) for p in etcd.version().split(".")[:2])
    assert (major, minor) >= (3, 4)
    assert conn.client.api_path == "/v3/"


def test_a_run_that_lost_its_lock_journals_nothing_more(etcd: EtcdServer, tmp_path: Path) -> None:
    """Once the lock key is gone (lease expired while etcd was out of reach), the journal
    refuses, so the executor runs no further step; its control is the same append before."""
    key = prefix()
    backend = EtcdStateBackend(EtcdBackend(endpoints=(etcd.url,), prefix=key), tmp_path)
    with backend.lock():
        journal = backend.journal()
        journal.record("run-start")  # control: accepted while the lock is ours
        Etcd3Client(port=etcd.port).delete(key + "/lock")
        with pytest.raises(JournalError, match=f"lost the etcd lock {key}/lock"):
            journal.record("start", vip="web", step=0)
    assert [v["event"] for _, v in etcd_keys(etcd, key + "/journal/")] == ["run-start"]
    assert [e.event for e in backend.read_journal()] == ["run-start"]


def test_the_lease_is_renewed_while_the_run_goes_on(etcd: EtcdServer, tmp_path: Path) -> None:
    """Held for three lease TTLs, the lock is still this run's: the keepalive thread renews it
    (the SIGKILL test above is the control: without renewals it is gone after one TTL)."""
    key = prefix()
    cfg = EtcdBackend(endpoints=(etcd.url,), prefix=key, lease_ttl=2)
    backend = EtcdStateBackend(cfg, tmp_path / "a")
    with backend.lock():
        time.sleep(6)
        assert [k for k, _ in etcd_keys(etcd, key + "/lock")] == [key + "/lock"]
        backend.journal().record("run-start")  # the fenced append still succeeds
        with pytest.raises(LockedError), EtcdStateBackend(cfg, tmp_path / "b").lock():
            pass
    assert etcd_keys(etcd, key + "/lock") == []


def test_etcd_killed_during_a_run_stops_the_next_step(tmp_path: Path) -> None:
    """etcd dies after the lock was taken: the next journal append is a JournalError (so the
    executor runs no further step and puts the VIP back), naming the journal and the cause."""
    if etcd_missing():
        pytest.skip(str(etcd_missing()))
    with etcd_server("et") as server:
        cfg = EtcdBackend(endpoints=(server.url,), prefix=prefix(), lease_ttl=5, timeout=2)
        backend = EtcdStateBackend(cfg, tmp_path)
        with backend.lock():
            journal = backend.journal()
            journal.record("run-start")
            server.kill()
            with pytest.raises(JournalError, match=r"cannot append to the etcd journal .*refused"):
                journal.record("start", vip="web", step=0)
    events = [json.loads(x)["event"] for x in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert events == ["run-start", "start"]  # the local file has it: written first


def test_etcd_auth_with_the_password_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """etcd with auth on: the lock and journal work as the user whose password is in
    ``password_env``; a wrong or missing password is one BackendError that never shows it,
    and no user at all is refused by etcd (the control: auth really is on)."""
    if etcd_missing():
        pytest.skip(str(etcd_missing()))
    secret = secrets.token_hex(12)
    with etcd_server("et") as server:
        gateway = server.url + "/v3"
        for path, body in (
            ("/auth/user/add", {"name": "root", "password": secret}),
            ("/auth/user/grant", {"user": "root", "role": "root"}),
            ("/auth/enable", {}),
        ):
            httpx.post(gateway + path, json=body, timeout=5).raise_for_status()
        cfg = EtcdBackend(
            endpoints=(server.url,), prefix=prefix(), username="root", password_env="ET_PW"
        )
        monkeypatch.setenv("ET_PW", secret)
        backend = EtcdStateBackend(cfg, tmp_path)
        with backend.lock():
            backend.journal().record("run-start")
        assert [e.event for e in backend.read_journal()] == ["run-start"]
        monkeypatch.setenv("ET_PW", "not-" + secret)
        login = pytest.raises(BackendError, match="refused the login of user root")
        with login as wrong, backend.lock():
            pass
        monkeypatch.delenv("ET_PW")
        unset = pytest.raises(BackendError, match=r"ET_PW \(backend.password_env\) is not set")
        with unset, backend.lock():
            pass
        anonymous = EtcdStateBackend(EtcdBackend(endpoints=(server.url,), prefix="/x"), tmp_path)
        with pytest.raises(BackendError, match="user name is empty"), anonymous.lock():
            pass
    assert secret not in str(wrong.value)
