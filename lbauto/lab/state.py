"""Where labs keep their state, how a lab's management index is chosen, and locking.

``/var/lib/lbauto/lab/<name>/state.json`` (root overridable with ``LBAUTO_LAB_DIR``) records the
spec, the index and the build phase. Everything else a lab owns is derived from these
(:func:`lbauto.lab.spec.layout`).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lbauto.errors import LabError
from lbauto.lab.host import run
from lbauto.lab.spec import MAX_INDEX, LabSpec, mgmt_net

DEFAULT_ROOT = Path("/var/lib/lbauto/lab")
STATE_FILE = "state.json"
PHASE_BUILDING = "building"
PHASE_UP = "up"


def root_dir() -> Path:
    return Path(os.environ.get("LBAUTO_LAB_DIR", str(DEFAULT_ROOT)))


def lab_dir(name: str) -> Path:
    return root_dir() / name


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """Serialise lab operations on one name (and index allocation, with name ``.index``)."""
    root = root_dir()
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".{name}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def forget_lock(name: str) -> None:
    """Remove a lab's lock file once the lab is gone (called with the lock held)."""
    (root_dir() / f".{name}.lock").unlink(missing_ok=True)


def read_state(name: str) -> dict[str, Any] | None:
    path = lab_dir(name) / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise LabError(
            f"lab state file {path} is unreadable ({err}): run `lbauto lab down`"
        ) from err
    if not isinstance(data, dict):
        raise LabError(f"lab state file {path} is not a JSON object: run `lbauto lab down`")
    return data


def write_state(name: str, spec: LabSpec, index: int, phase: str) -> None:
    directory = lab_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    data = {"name": name, "index": index, "phase": phase, "spec": asdict(spec)}
    tmp = directory / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(directory / STATE_FILE)


def spec_from_state(data: dict[str, Any]) -> tuple[LabSpec, int, str]:
    try:
        spec = LabSpec(**data["spec"])
        return spec, int(data["index"]), str(data["phase"])
    except (KeyError, TypeError, ValueError) as err:
        raise LabError(f"lab state for {data.get('name')!r} is malformed ({err})") from err


def used_indexes() -> dict[int, str]:
    """Indexes held by labs with a state file (including half-built ones)."""
    used: dict[int, str] = {}
    root = root_dir()
    if not root.is_dir():
        return used
    for path in sorted(root.glob(f"*/{STATE_FILE}")):
        try:
            data = json.loads(path.read_text())
            used[int(data["index"])] = str(data["name"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return used


@dataclass(frozen=True)
class HostNet:
    """An IPv4 prefix the host uses: an address or a route, on a device."""

    net: ipaddress.IPv4Network
    what: str
    dev: str


def host_networks() -> list[HostNet]:
    """IPv4 prefixes the host (root namespace) has addresses or routes in."""
    found: list[HostNet] = []
    addrs = json.loads(run(["ip", "-4", "-j", "addr", "show"]).stdout or "[]")
    for link in addrs:
        for info in link.get("addr_info", []):
            net = ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}").network
            what = f"address {info['local']}/{info['prefixlen']} on {link['ifname']}"
            found.append(HostNet(net, what, str(link["ifname"])))
    routes = json.loads(run(["ip", "-4", "-j", "route", "show", "table", "all"]).stdout or "[]")
    for route in routes:
        dst = route.get("dst", "")
        if dst in ("", "default") or route.get("type") in ("local", "broadcast"):
            continue
        net = ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False)
        dev = str(route.get("dev", ""))
        what = f"route {dst}" + (f" via {route['gateway']}" if "gateway" in route else "")
        found.append(HostNet(net, what + (f" dev {dev}" if dev else ""), dev))
    return found


def clash(index: int, networks: list[HostNet], own_bridge: str) -> str | None:
    """Why the management subnet of ``index`` cannot be used, or None.

    The lab's own bridge (present when ``up`` runs again on a lab) is not a clash.
    """
    net = mgmt_net(index)
    for other in networks:
        if other.net.overlaps(net) and other.dev != own_bridge:
            return f"{other.what} overlaps the lab management subnet {net}"
    return None


def allocate_index(name: str, wanted: int | None, bridge: str) -> int:
    """Reserve the management index for ``name`` (caller holds the ``.index`` lock)."""
    used = used_indexes()
    networks = host_networks()
    if wanted is not None:
        holder = used.get(wanted)
        if holder is not None and holder != name:
            raise LabError(f"lab {name}: management index {wanted} is taken by lab {holder}")
        reason = clash(wanted, networks, bridge)
        if reason:
            raise LabError(
                f"lab {name}: {reason} (address range clash with the host); "
                "choose another --index or remove that address/route"
            )
        return wanted
    reasons = []
    for index in range(MAX_INDEX + 1):
        if index in used:
            continue
        reason = clash(index, networks, bridge)
        if reason is None:
            return index
        reasons.append(reason)
    raise LabError(
        f"lab {name}: no free management subnet in 198.18.0.0/18"
        + (f" ({reasons[0]} and {len(reasons) - 1} more clashes)" if reasons else "")
        + ": run `lbauto lab down` on labs you no longer need"
    )
