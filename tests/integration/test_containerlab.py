"""The containerlab topology's FRR node, run for real as a plain Docker container (no
containerlab here), driven by lbauto through napalm_frr's ``docker`` transport.

The container is started from ``lbauto-clab/frr`` (``containerlab/images/build.sh frr``: a
debootstrapped bookworm base, reused within a run, plus Debian's FRR) with the node's image,
binds, capabilities and sysctls read from ``containerlab/lbauto.clab.yml`` and the name
containerlab would give it (``clab-lbauto-frr1``). Its ``eth1``/``eth2`` are veths into network
namespaces of this test, as containerlab wires links; a real lbauto agent serves in the
server-segment namespace at the address ``containerlab/inventory/agents.yaml`` names. The
inventory is ``containerlab/inventory/`` itself, minus the cEOS router (no image here).

Needs root, a docker client and a running dockerd (``containerlab/dockerd.sh start``); in CI a
missing one fails the test with the reason.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.agent_net import in_netns
from tests.integration.conftest import in_ci

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CLAB = REPO / "containerlab"
TOPOLOGY = yaml.safe_load((CLAB / "lbauto.clab.yml").read_text())
HOSTS = yaml.safe_load((CLAB / "inventory" / "hosts.yaml").read_text())
AGENTS = yaml.safe_load((CLAB / "inventory" / "agents.yaml").read_text())["agents"]
NODE = "frr1"
CONTAINER = str(HOSTS[NODE]["connection_options"]["napalm"]["extras"]["optional_args"]["container"])
LBAUTO = Path(sys.executable).parent / "lbauto"
TOKEN_ENV = str(AGENTS[0]["token_env"])
LABEL = "lbauto.test=containerlab"
WEB, API = "192.0.2.10/32", "192.0.2.11/32"  # containerlab/inventory/vips.yaml
AGENT_ADDR, DIP2 = str(AGENTS[0]["address"]), "198.51.100.22"


def sh(*argv: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(argv, capture_output=True, text=True, check=False, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} (rc {p.returncode}): {p.stderr.strip()[-2000:]}")
    return p


def docker_problem() -> str | None:
    """Why Docker cannot be used here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    if shutil.which("docker") is None:
        return "no docker client (apt-get install docker.io)"
    info = sh("docker", "info", "--format", "{{.ServerVersion}}", check=False)
    if info.returncode != 0:
        why = info.stderr.strip()[:300]
        failed = Path("/run/lbauto-dockerd.reason")  # written by containerlab/dockerd.sh
        if failed.is_file():
            return f"dockerd is not running ({why}): {failed.read_text().strip()}"
        return f"dockerd is not running ({why}); start it with containerlab/dockerd.sh start"
    return None


@pytest.fixture(scope="module")
def docker_host(lab_host: None) -> None:
    reason = docker_problem()
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"CI=true: the containerlab test must run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def frr_image(docker_host: None) -> str:
    """Builds (or reuses: the base image and Docker's layer cache) the FRR node's image."""
    image = str(TOPOLOGY["topology"]["nodes"][NODE]["image"])
    started = time.monotonic()
    sh(str(CLAB / "images" / "build.sh"), "frr", timeout=900)
    print(f"clab-images frr: {time.monotonic() - started:.1f} s")
    return image


def exec_in(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("docker", "exec", CONTAINER, *argv, check=check)


def vtysh(*commands: str) -> str:
    args = [a for c in commands for a in ("-c", c)]
    return exec_in("vtysh", *args).stdout


def routes(prefix: str) -> list[dict[str, Any]]:
    data = json.loads(vtysh(f"show ip route {prefix} json") or "{}")
    return list(data.get(prefix, []))


def running() -> str:
    return vtysh("show running-config no-header")


@dataclass
class Clab:
    tag: str
    ns_agent: str
    ns_client: str
    inventory: Path
    token: str
    agent: subprocess.Popen[bytes]
    tmp: Path

    def lbauto(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """lbauto, run where a containerlab user runs it: on the management network (here the
        agent's namespace holds the management address) with the docker client on the host."""
        env = {**os.environ, TOKEN_ENV: self.token, "NO_COLOR": "1", "COLUMNS": "200"}
        return sh(
            "ip", "netns", "exec", self.ns_agent, str(LBAUTO), "-i", str(self.inventory), *args,
            check=check, env=env, timeout=180,
        )  # fmt: skip


def _remove_container() -> None:
    found = sh("docker", "ps", "-aq", "--filter", f"name=^{CONTAINER}$", check=False).stdout
    if not found.strip():
        return
    labels = sh("docker", "inspect", "-f", "{{json .Config.Labels}}", CONTAINER).stdout
    if json.loads(labels or "{}").get("lbauto.test") != "containerlab":
        raise AssertionError(f"a container {CONTAINER} that this test did not start exists")
    sh("docker", "rm", "-f", CONTAINER)


def _run_node(tmp: Path) -> None:
    """docker run with the topology node's settings; bind sources are copies (the router may
    write its startup config)."""
    node = TOPOLOGY["topology"]["nodes"][NODE]
    argv = ["docker", "run", "-d", "--name", CONTAINER, "--hostname", NODE, "--label", LABEL]
    argv += ["--network", "none"]  # links are veths added below, as containerlab adds them
    for cap in node.get("cap-add", []):
        argv += ["--cap-add", str(cap)]
    for key, value in node.get("sysctls", {}).items():
        argv += ["--sysctl", f"{key}={value}"]
    for bind in node.get("binds", []):
        src, dst, *mode = str(bind).split(":")
        copy = tmp / "binds" / src
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CLAB / src, copy)
        argv += ["-v", ":".join([str(copy), dst, *mode])]
    sh(*argv, str(node["image"]))


def _link(pid: str, inside: str, ns: str, outside: str, tag: str) -> None:
    """A veth from the container (``inside``) to namespace ``ns`` (``outside``)."""
    a, b = f"lbcl{tag}{inside[-1]}a", f"lbcl{tag}{inside[-1]}b"
    sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
    sh("ip", "link", "set", a, "netns", pid)
    sh("nsenter", "-t", pid, "-n", "ip", "link", "set", a, "name", inside, "up")
    sh("ip", "link", "set", b, "netns", ns)
    sh("ip", "-n", ns, "link", "set", b, "name", outside, "up")


def _wait(what: str, ok: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:.0f} s")
        time.sleep(0.2)


def _inventory(tmp: Path) -> Path:
    inv = tmp / "inventory"
    shutil.copytree(CLAB / "inventory", inv)
    hosts = {name: entry for name, entry in HOSTS.items() if entry["platform"] == "frr"}
    (inv / "hosts.yaml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    return inv


def _start_agent(tmp: Path, ns: str, token: str) -> subprocess.Popen[bytes]:
    api = httpx.URL(str(AGENTS[0]["api"]))
    cfg = tmp / "agent.yaml"
    (tmp / "token").write_text(token + "\n")
    (tmp / "token").chmod(0o600)
    cfg.write_text(
        f"interface: eth1\nlisten: {api.host}\nport: {api.port}\n"
        f"token_file: {tmp / 'token'}\nstate_file: {tmp / 'agent-state.json'}\n"
    )
    with (tmp / "agent.log").open("ab") as log:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "lbauto.agent", "serve",
             "--config", str(cfg)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    health_url = f"http://{api.host}:{api.port}/v1/health"

    def health() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"agent exited: {(tmp / 'agent.log').read_text()[-2000:]}")
        try:
            return bool(in_netns(ns, lambda: httpx.get(health_url, timeout=0.5).status_code == 200))
        except httpx.HTTPError:
            return False

    try:
        _wait("the agent answers /v1/health", health)
    except BaseException:
        _stop(proc)
        raise
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def _eth2_addressed() -> bool:
    shown = exec_in("vtysh", "-c", "show interface eth2", check=False).stdout
    return "198.51.100.1/24" in shown


@pytest.fixture(scope="module")
def clab(frr_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clab]:
    tmp = tmp_path_factory.mktemp("clab")
    tag = secrets.token_hex(2)
    ns_agent, ns_client = f"lbcl{tag}-sw", f"lbcl{tag}-cl"
    agent: subprocess.Popen[bytes] | None = None
    _remove_container()
    try:
        for ns in (ns_agent, ns_client):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        _run_node(tmp)
        pid = sh("docker", "inspect", "-f", "{{.State.Pid}}", CONTAINER).stdout.strip()
        _link(pid, "eth1", ns_client, "eth1", tag)  # frr1:eth1 -- client segment
        _link(pid, "eth2", ns_agent, "eth1", tag)  # frr1:eth2 -- server segment (agent1:eth1)
        sh("ip", "-n", ns_client, "addr", "add", "203.0.113.100/24", "dev", "eth1")
        sh("ip", "-n", ns_agent, "addr", "add", f"{AGENT_ADDR}/24", "dev", "eth1")
        mgmt = httpx.URL(str(AGENTS[0]["api"])).host
        sh("ip", "-n", ns_agent, "addr", "add", f"{mgmt}/32", "dev", "lo")
        _wait("FRR answers vtysh and has addressed eth2", _eth2_addressed)
        token = secrets.token_hex(16)
        agent = _start_agent(tmp, ns_agent, token)
        yield Clab(tag, ns_agent, ns_client, _inventory(tmp), token, agent, tmp)
    finally:
        if agent is not None:
            _stop(agent)
        sh("docker", "rm", "-f", CONTAINER, check=False)
        for ns in (ns_agent, ns_client):
            sh("ip", "netns", "del", ns, check=False)


def lbauto_lines(cfg: str) -> list[str]:
    return sorted(line for line in cfg.splitlines() if "tag 4242" in line)


# ------------------------------------------------------------------------------ lbauto CLI


def test_plan_dry_run_and_push_through_the_docker_transport(clab: Clab) -> None:
    before = running()
    assert lbauto_lines(before) == []

    plan = json.loads(clab.lbauto("plan", "-o", "json").stdout)
    text = json.dumps(plan)
    assert "192.0.2.10" in text and "192.0.2.11" in text, plan
    assert NODE in text, plan

    # apply --dry-run: the device diff comes from frr-reload --test inside the container
    dry = clab.lbauto("apply", "--dry-run")
    for line in (
        f"+ip route {WEB} {AGENT_ADDR} tag 4242 200",
        f"+ip route {API} {AGENT_ADDR} tag 4242 200",
        f"+ip route {API} {DIP2} tag 4242",
    ):
        assert line in dry.stdout, dry.stdout
    assert running() == before, "a dry run changed the router"
    assert routes(API) == []

    push = clab.lbauto("push")
    assert f"+ip route {API} {DIP2} tag 4242" in push.stdout, push.stdout
    assert lbauto_lines(running()) == sorted(
        [
            f"ip route {WEB} {AGENT_ADDR} tag 4242 200",
            f"ip route {API} {DIP2} tag 4242",
            f"ip route {API} {AGENT_ADDR} tag 4242 200",
        ]
    )

    # the routes are in FRR's RIB and in the container's kernel: the bypass (distance 1) wins
    def selected(prefix: str) -> dict[str, Any] | None:
        return next((r for r in routes(prefix) if r.get("selected")), None)

    _wait("the bypass is installed", lambda: selected(API) is not None, timeout=10)
    best = selected(API)
    assert best is not None
    assert best["distance"] == 1 and best["tag"] == 4242
    assert [n["ip"] for n in best["nexthops"]] == [DIP2]
    assert selected(WEB) is not None and selected(WEB)["distance"] == 200  # type: ignore[index]
    kernel = exec_in("ip", "route", "show", "192.0.2.11").stdout
    assert f"via {DIP2} dev eth2" in kernel, kernel

    # a second push finds nothing to do (the diff is computed on the device)
    again = clab.lbauto("push", "--detailed-exitcode", "--dry-run", check=False)
    assert again.returncode == 0, again.stdout + again.stderr


# ------------------------------------------------------------------------------ the driver

_COMMIT_AND_HANG = textwrap.dedent(
    """
    import sys, time, napalm
    revert = None if sys.argv[2] == "none" else int(sys.argv[2])
    d = napalm.get_network_driver("frr")(
        "frr1", "root", "", optional_args={"transport": "docker", "container": sys.argv[1]})
    d.open()
    d.load_merge_candidate(config="ip route 192.0.2.99/32 198.51.100.99 tag 4242 200\\n")
    d.commit_config(revert_in=revert)
    print(d.commit_id, flush=True)
    time.sleep(600)
    """
)
PROBE = "ip route 192.0.2.99/32 198.51.100.99 tag 4242 200"


def _commit_then_die(revert: str) -> str:
    """A controller commits (with revert_in or without), then is killed with SIGKILL."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _COMMIT_AND_HANG, CONTAINER, revert],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    commit_id = proc.stdout.readline().strip()
    proc.kill()
    _, err = proc.communicate(timeout=10)
    assert commit_id, err
    return commit_id


def _driver(**extra: Any) -> Any:
    import napalm

    args = {"transport": "docker", "container": CONTAINER, **extra}
    d = napalm.get_network_driver("frr")("frr1", "root", "", optional_args=args)
    d.open()
    return d


def test_commit_confirm_reverts_after_the_controller_is_killed(clab: Clab) -> None:
    before = running()
    commit_id = _commit_then_die("3")
    assert PROBE in running(), "the commit was not applied"
    state = f"/root/.local/state/napalm-frr/default/commits/{commit_id}/state"
    # the timer restores the config, then records the commit as reverted
    _wait(
        "the router reverted the unconfirmed commit",
        lambda: exec_in("cat", state).stdout.strip() == "reverted",
        15,
    )
    assert running() == before


def test_control_without_revert_in_the_change_stays(clab: Clab) -> None:
    """Control for the test above: the same dead controller without commit-confirm leaves its
    change in place, so the revert above is the timer's doing. Cleaned up by a rollback from
    another session naming the recorded commit."""
    commit_id = _commit_then_die("none")
    time.sleep(5)
    assert PROBE in running()
    d = _driver(commit_id=commit_id)
    try:
        d.rollback()
    finally:
        d.close()
    assert PROBE not in running()


def test_rollback_diff_and_confirm_through_docker_exec(clab: Clab) -> None:
    before = running()
    d = _driver()
    try:
        d.load_merge_candidate(config=PROBE + "\n")
        assert d.compare_config() == "+" + PROBE
        d.commit_config(revert_in=60)
        assert d.has_pending_commit() and d.pending_commit["mine"]
        d.confirm_commit()
        assert not d.has_pending_commit()
        assert PROBE in running()
        d.rollback()
        assert running() == before
        # the private session directory lives inside the container and goes with close()
        session = d.session_id
    finally:
        d.close()
    left = exec_in("ls", "/root/.local/state/napalm-frr/default/sessions").stdout.split()
    assert session not in left


def test_a_missing_container_is_a_connection_error(clab: Clab) -> None:
    from napalm.base.exceptions import ConnectionException

    with pytest.raises(ConnectionException, match="clab-lbauto-nosuchnode"):
        _driver(container="clab-lbauto-nosuchnode")


def test_a_container_that_stops_under_the_driver_is_a_closed_connection(clab: Clab) -> None:
    """Runs last: it stops the module's container (the fixture removes it)."""
    from napalm.base.exceptions import ConnectionClosedException

    d = _driver()
    assert d.is_alive() == {"is_alive": True}
    sh("docker", "stop", "-t", "1", CONTAINER)
    assert d.is_alive() == {"is_alive": False}
    with pytest.raises(ConnectionClosedException, match="gone or stopped"):
        d.get_facts()
    d.close()  # closing a dead session does not raise
