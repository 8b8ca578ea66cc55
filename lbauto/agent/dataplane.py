"""The nftables data plane: ruleset rendering (pure) and its application (``nft -f``).

One ``netdev`` table with an ingress chain on the server-facing interface. The ingress chain
jumps through a verdict map (VIP -> that VIP's chain), so one VIP is one map element. Each VIP
owns: chain ``v<sfx>``, bucket map ``b<sfx>`` (jhash mod M -> DIP mark), DIP map ``d<sfx>``
(mark -> address) and flow map ``f<sfx>`` (flow key -> mark, dynamic with timeouts), plus its
element in the shared maps: ``vips4``/``vips6`` (with per-element counters: the VIP's packets
and bytes) and ``th4``/``th6`` (per-element counters of transit-pin hits). An update touches
only these.

Counters are set-element counters, not named counter objects: ``nft`` 1.0.6 lists any named
object only after fetching the whole ruleset (seconds with 1,000 VIPs), while one set lists
in milliseconds; and fewer objects make every ``nft -f`` cache fetch cheaper.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import subprocess
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lbauto.agent.store import VipRecord
from lbauto.errors import AgentError
from lbauto.agent.maglev import maglev_table, table_size
from lbauto.core.model import IPAddress, Mode, addr_key

#: Fixed jhash seed: without one the kernel picks a random seed per rule, so every chain rewrite
#: would reshuffle the buckets and two agents of a pool would disagree.
HASH_SEED = 0x4C424155


@dataclass(frozen=True)
class TableSpec:
    table: str
    interface: str
    flow_timeout: int = 300
    flow_table_size: int = 1_048_576
    buckets_per_dip: int = 100


def suffix(address: IPAddress) -> str:
    """Object-name suffix for a VIP: family and the address in hex."""
    width = 8 if address.version == 4 else 32
    return f"{address.version}_{int(address):0{width}x}"


def _fam(address: IPAddress) -> str:
    return "ip" if address.version == 4 else "ip6"


def flow_key(address: IPAddress) -> str:
    """The flow map key. The map is per VIP, so the destination address is implied. Ports come
    first: nft 1.0.6 asserts (netlink_linearize.c:799) on an ``update`` whose concatenation has
    an IPv6 address before another field."""
    return f"th sport . th dport . {_fam(address)} saddr"


def render_base(spec: TableSpec) -> list[str]:
    """Table, ingress chain and the VIP verdict maps. Idempotent; never touches VIP objects."""
    t = f"netdev {spec.table}"
    return [
        f"add table {t}",
        f"add chain {t} ingress {{ type filter hook ingress device "
        f'"{spec.interface}" priority 0; policy accept; }}',
        f"add map {t} vips4 {{ type ipv4_addr : verdict; counter; }}",
        f"add map {t} vips6 {{ type ipv6_addr : verdict; counter; }}",
        f"add set {t} th4 {{ type ipv4_addr; flags dynamic; counter; }}",
        f"add set {t} th6 {{ type ipv6_addr; flags dynamic; counter; }}",
        f"flush chain {t} ingress",
        f"add rule {t} ingress ip daddr vmap @vips4",
        f"add rule {t} ingress ip6 daddr vmap @vips6",
    ]


def bucket_marks(rec: VipRecord, buckets_per_dip: int) -> list[int]:
    """The VIP's Maglev bucket table as DIP marks (empty for an ``empty`` VIP)."""
    dips = sorted(rec.dips, key=addr_key)
    if not dips:
        return []
    table = maglev_table([str(d) for d in dips], table_size(len(dips), buckets_per_dip))
    return [rec.marks[dips[i]] for i in table]


def _elements(pairs: Iterable[tuple[object, object]]) -> str:
    return ", ".join(f"{k} : {v}" for k, v in pairs)


def render_chain(rec: VipRecord, spec: TableSpec, m: int) -> list[str]:
    """The VIP chain's rules, in order (without the ``add rule <table> <chain>`` prefix)."""
    s = suffix(rec.address)
    f = _fam(rec.address)
    key = flow_key(rec.address)
    hkey = f"{f} saddr . th sport . {f} daddr . th dport"
    fwd = f'fwd {f} to meta mark map @d{s} device "{spec.interface}"'
    upd = f"update @f{s} {{ {key} : meta mark }}"
    rules: list[str] = []
    active = rec.mode is not Mode.EMPTY and bool(rec.dips)
    if active:
        # Other protocols have no ports: hash on addresses, no flow state.
        rules.append(
            f"meta l4proto != {{ tcp, udp }} meta mark set jhash {f} saddr . {f} daddr "
            f"mod {m} seed 0x{HASH_SEED:08x} map @b{s} {fwd}"
        )
    if rec.flow_tracking:
        rules.append(f"meta l4proto {{ tcp, udp }} meta mark set {key} map @f{s} {upd} {fwd}")
        if rec.transit is not None:
            pin = rec.marks[rec.transit.dip]
            hit = f"meta mark set {pin} update @th{rec.address.version} {{ {f} daddr }} {upd} {fwd}"
            rules.append(f"tcp flags & (syn | ack) != syn {hit}")
            rules.append(f"meta l4proto udp {hit}")
    if active:
        chosen = (
            f"meta l4proto {{ tcp, udp }} meta mark set jhash {hkey} mod {m} "
            f"seed 0x{HASH_SEED:08x} map @b{s}"
        )
        rules.append(f"{chosen} {upd} {fwd}" if rec.flow_tracking else f"{chosen} {fwd}")
    else:
        rules.append("meta l4proto tcp reject with tcp reset")
        rules.append("reject with icmpx host-unreachable")
    # A packet that found no DIP (cannot happen with a consistent map) must not leak into
    # the agent's own stack.
    rules.append("drop")
    return rules


def render_vip(rec: VipRecord, spec: TableSpec) -> list[str]:
    """Create or update one VIP's objects. Never recreates the flow map; flushes it only when
    tracking is off (so turning tracking off empties it in the same transaction)."""
    t = f"netdev {spec.table}"
    s = suffix(rec.address)
    f = _fam(rec.address)
    marks = bucket_marks(rec, spec.buckets_per_dip)
    m = len(marks) or table_size(0, spec.buckets_per_dip)
    out = [
        f"add chain {t} v{s}",
        f"add map {t} b{s} {{ typeof numgen inc mod 2 : meta mark; }}",
        f"add map {t} d{s} {{ typeof meta mark : {f} daddr; }}",
        f"add map {t} f{s} {{ typeof {flow_key(rec.address)} : meta mark; "
        f"flags dynamic,timeout; timeout {spec.flow_timeout}s; size {spec.flow_table_size}; }}",
        f"flush chain {t} v{s}",
        f"flush map {t} b{s}",
        f"flush map {t} d{s}",
    ]
    if not rec.flow_tracking:
        out.append(f"flush map {t} f{s}")
    if marks:
        out.append(f"add element {t} b{s} {{ {_elements(enumerate(marks))} }}")
    dmap = sorted(rec.marks.items(), key=lambda kv: kv[1])
    if dmap:
        out.append(f"add element {t} d{s} {{ {_elements((mk, d) for d, mk in dmap)} }}")
    out += [f"add rule {t} v{s} {r}" for r in render_chain(rec, spec, m)]
    out.append(f"add element {t} vips{rec.address.version} {{ {rec.address} : jump v{s} }}")
    return out


def render_update(old: VipRecord | None, new: VipRecord, spec: TableSpec) -> list[str]:
    """The smallest transaction that turns the kernel objects of ``old`` into ``new``:
    only changed chain rules, bucket elements and DIP-map elements (Maglev keeps most buckets,
    so a rebalance rewrites ~1/N of them). Falls back to :func:`render_vip` for a new VIP."""
    if old is None or old.address != new.address:
        return render_vip(new, spec)
    t = f"netdev {spec.table}"
    s = suffix(new.address)
    out: list[str] = []
    if old.flow_tracking and not new.flow_tracking:
        out.append(f"flush map {t} f{s}")
    old_b, new_b = bucket_marks(old, spec.buckets_per_dip), bucket_marks(new, spec.buckets_per_dip)
    m_new = len(new_b) or table_size(0, spec.buckets_per_dip)
    m_old = len(old_b) or table_size(0, spec.buckets_per_dip)
    if len(old_b) != len(new_b):
        out.append(f"flush map {t} b{s}")
        if new_b:
            out.append(f"add element {t} b{s} {{ {_elements(enumerate(new_b))} }}")
    else:
        changed = [i for i, (a, b) in enumerate(zip(old_b, new_b, strict=True)) if a != b]
        if changed:
            out.append(f"delete element {t} b{s} {{ {', '.join(map(str, changed))} }}")
            out.append(f"add element {t} b{s} {{ {_elements((i, new_b[i]) for i in changed)} }}")
    gone = sorted(mk for d, mk in old.marks.items() if new.marks.get(d) != mk)
    added = sorted((mk, d) for d, mk in new.marks.items() if old.marks.get(d) != mk)
    if gone:
        out.append(f"delete element {t} d{s} {{ {', '.join(map(str, gone))} }}")
    if added:
        out.append(f"add element {t} d{s} {{ {_elements(added)} }}")
    rules = render_chain(new, spec, m_new)
    if rules != render_chain(old, spec, m_old):
        out.append(f"flush chain {t} v{s}")
        out += [f"add rule {t} v{s} {r}" for r in rules]
    return out


def render_remove(address: IPAddress, spec: TableSpec) -> list[str]:
    """Remove one VIP's objects (the verdict-map element first, so nothing jumps there)."""
    return render_remove_suffix(suffix(address), spec, in_vmap=True)


def address_of(sfx: str) -> IPAddress:
    """The VIP address an object suffix names (inverse of :func:`suffix`)."""
    return (
        ipaddress.ip_address(int(sfx[2:], 16))
        if sfx[0] == "4"
        else ipaddress.IPv6Address(int(sfx[2:], 16))
    )


def render_remove_suffix(sfx: str, spec: TableSpec, in_vmap: bool) -> list[str]:
    """Remove one VIP's objects by suffix (verdict-map element first, so nothing jumps there).
    The transit-hit element is added first so that deleting it cannot fail."""
    t = f"netdev {spec.table}"
    addr = address_of(sfx)
    out = [f"delete element {t} vips{sfx[0]} {{ {addr} }}"] if in_vmap else []
    out += [
        f"add element {t} th{sfx[0]} {{ {addr} }}",
        f"delete element {t} th{sfx[0]} {{ {addr} }}",
        f"flush chain {t} v{sfx}",
        f"delete chain {t} v{sfx}",
    ]
    out += [f"delete map {t} {p}{sfx}" for p in "bdf"]
    return out


def render_delete_flows(address: IPAddress, spec: TableSpec, flows: Sequence[FlowEntry]) -> str:
    """Delete given flow entries of one VIP (a drain that timed out)."""
    keys = ", ".join(f"{e.client_port} . {e.vip_port} . {e.client}" for e in flows)
    return f"delete element netdev {spec.table} f{suffix(address)} {{ {keys} }}"


@dataclass(frozen=True)
class FlowEntry:
    client: str
    client_port: int
    vip_port: int
    mark: int
    expires: float | None


@dataclass(frozen=True)
class KernelTable:
    """What the kernel has: VIP chain suffixes, verdict-map elements (address -> suffix)."""

    exists: bool
    chains: frozenset[str]
    vmap: dict[str, str]


@dataclass(frozen=True)
class VipCounters:
    packets: int = 0
    bytes: int = 0
    transit_hits: int = 0


class Dataplane(Protocol):
    """Where rendered commands go. :class:`NftDataplane` is the real one."""

    def apply(self, commands: Sequence[str]) -> None: ...

    def kernel_table(self, table: str) -> KernelTable: ...

    def flows(self, table: str, sfx: str) -> list[FlowEntry]: ...

    def counters(self, table: str) -> dict[str, VipCounters]: ...


class NftDataplane:
    """Runs ``nft`` (``argv`` lets tests and labs prefix ``ip netns exec NS``)."""

    def __init__(self, argv: Sequence[str] = ("nft",), timeout: float = 30.0) -> None:
        self.argv = list(argv)
        self.timeout = timeout

    def _run(self, args: Sequence[str], stdin: str | None = None) -> str:
        try:
            p = subprocess.run(
                [*self.argv, *args],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise AgentError(f"cannot run nft ({e}); is nftables installed?") from e
        if p.returncode != 0:
            raise AgentError(f"nft {' '.join(args)} failed: {p.stderr.strip()[:2000]}")
        return p.stdout

    def apply(self, commands: Sequence[str]) -> None:
        """One ``nft -f`` transaction: all commands apply or none do."""
        if commands:
            self._run(["-f", "-"], "\n".join(commands) + "\n")

    def _json(self, args: Sequence[str]) -> list[dict[str, Any]]:
        out = self._run(["-j", *args])
        items: list[dict[str, Any]] = json.loads(out).get("nftables", [])
        return items

    def kernel_table(self, table: str) -> KernelTable:
        # "list tables" fetches the whole ruleset on nft 1.0.6; "list chains" does not
        names = [
            c["chain"]["name"]
            for c in self._json(["list", "chains", "netdev"])
            if "chain" in c and c["chain"].get("table") == table
        ]
        if not names:
            return KernelTable(False, frozenset(), {})
        chains = frozenset(n[1:] for n in names if n.startswith("v"))
        vmap: dict[str, str] = {}
        for name in ("vips4", "vips6"):
            for addr, value, _ in self._elements(table, "map", name):
                if isinstance(value, dict):
                    vmap[addr] = str(value.get("jump", {}).get("target", ""))[1:]
        return KernelTable(True, chains, vmap)

    def _elements(
        self, table: str, kind: str, name: str
    ) -> Iterator[tuple[str, Any, dict[str, Any]]]:
        """(key, value, counter) of each element of a set/map; missing set = none."""
        try:
            items = self._json(["list", kind, "netdev", table, name])
        except AgentError:
            return
        for item in items:
            for el in item.get(kind, {}).get("elem", []):
                key, value = (el[0], el[1]) if kind == "map" else (el, None)
                counter: dict[str, Any] = {}
                if isinstance(key, dict) and "elem" in key:
                    counter = key["elem"].get("counter") or {}
                    key = key["elem"]["val"]
                yield str(key), value, counter

    def flows(self, table: str, sfx: str) -> list[FlowEntry]:
        out: list[FlowEntry] = []
        for item in self._json(["list", "map", "netdev", table, f"f{sfx}"]):
            for el in item.get("map", {}).get("elem", []):
                out.append(_flow_entry(el))
        return out

    def counters(self, table: str) -> dict[str, VipCounters]:
        """Per VIP address: packets and bytes (verdict-map element) and transit-pin hits."""
        res: dict[str, VipCounters] = {}
        for v in "46":
            for addr, _, c in self._elements(table, "map", f"vips{v}"):
                res[addr] = VipCounters(int(c.get("packets", 0)), int(c.get("bytes", 0)))
            for addr, _, c in self._elements(table, "set", f"th{v}"):
                old = res.get(addr, VipCounters())
                res[addr] = VipCounters(old.packets, old.bytes, int(c.get("packets", 0)))
        return res


class LibNftDataplane(NftDataplane):
    """Applies transactions in-process through libnftables (ctypes); reads still run ``nft``.

    Saves the process start of every update (about half of an update's time with 1,000 VIPs).
    The library context is not thread-safe: one lock serialises its use. Must run in the
    namespace of the data plane (the agent does)."""

    def __init__(self, library: str = "libnftables.so.1", timeout: float = 30.0) -> None:
        super().__init__(("nft",), timeout)
        try:
            lib = ctypes.CDLL(library)
        except OSError as e:
            raise AgentError(f"cannot load {library} ({e}); install libnftables1") from e
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        self._lib = lib
        self._ctx = lib.nft_ctx_new(0)
        if not self._ctx or lib.nft_ctx_buffer_error(self._ctx) != 0:
            raise AgentError("libnftables: cannot create a context")
        self._lock = threading.Lock()

    def apply(self, commands: Sequence[str]) -> None:
        if not commands:
            return
        text = ("\n".join(commands) + "\n").encode()
        with self._lock:
            rc = self._lib.nft_run_cmd_from_buffer(self._ctx, text)
            err = self._lib.nft_ctx_get_error_buffer(self._ctx) or b""
        if rc != 0:
            raise AgentError(f"nft transaction failed: {err.decode(errors='replace')[:2000]}")


def make_dataplane(argv: Sequence[str] = ("nft",)) -> NftDataplane:
    """libnftables in-process when available and ``nft`` is not wrapped, else ``nft`` runs."""
    if tuple(argv) == ("nft",):
        try:
            return LibNftDataplane()
        except AgentError:
            pass
    return NftDataplane(argv)


def _flow_entry(el: list[Any]) -> FlowEntry:
    key, mark = el[0], el[1]
    expires: float | None = None
    if isinstance(key, dict) and "elem" in key:
        expires = key["elem"].get("expires")
        key = key["elem"]["val"]
    sport, dport, client = key["concat"]
    return FlowEntry(
        client=str(client),
        client_port=int(sport),
        vip_port=int(dport),
        mark=int(mark),
        expires=float(expires) if expires is not None else None,
    )


class RecordingDataplane:
    """A dataplane that only records transactions (``--dry-run`` style, and unit tests without
    root). ``flow_entries[sfx]`` is what :meth:`flows` returns for a VIP."""

    def __init__(self) -> None:
        self.transactions: list[list[str]] = []
        self.flow_entries: dict[str, list[FlowEntry]] = {}
        self.counter_values: dict[str, VipCounters] = {}
        self.table = KernelTable(False, frozenset(), {})

    def apply(self, commands: Sequence[str]) -> None:
        self.transactions.append(list(commands))

    def kernel_table(self, table: str) -> KernelTable:
        return self.table

    def flows(self, table: str, sfx: str) -> list[FlowEntry]:
        return list(self.flow_entries.get(sfx, []))

    def counters(self, table: str) -> dict[str, VipCounters]:
        return dict(self.counter_values)
