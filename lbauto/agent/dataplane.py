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
import functools
import ipaddress
import json
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from socket import AF_INET, AF_INET6, inet_ntop
from typing import Any, Protocol

from lbauto.agent.flows import RawElement, host_u32, port, read_elements
from lbauto.agent.maglev import maglev_table, table_size
from lbauto.agent.store import VipRecord
from lbauto.core.model import IPAddress, Mode, addr_key
from lbauto.errors import AgentError

#: Fixed jhash seed: without one the kernel picks a random seed per rule, so every chain rewrite
#: would reshuffle the buckets and two agents of a pool would disagree.
HASH_SEED = 0x4C424155
_HOST = sys.byteorder


@dataclass(frozen=True)
class TableSpec:
    table: str
    interface: str
    flow_timeout: int = 300
    flow_table_size: int = 1_048_576
    buckets_per_dip: int = 100
    #: Seconds a flow entry lives after its connection sent FIN or RST (refreshed by each
    #: later packet of it): long enough for the rest of the close, short so a reused port is
    #: soon free and a closed connection no longer holds a draining DIP.
    close_timeout: int = 10


#: Flag bit of a flow entry's mark: the connection sent FIN or RST. DIP marks stay below it.
CLOSED = 0x80000000
#: Modulus of the address hash in IPv6 hint keys (largest 32-bit prime).
HINT_MOD = 4294967291


def suffix(address: IPAddress) -> str:
    """Object-name suffix for a VIP: family and the address in hex."""
    width = 8 if address.version == 4 else 32
    return f"{address.version}_{int(address):0{width}x}"


def _fam(address: IPAddress) -> str:
    return "ip" if address.version == 4 else "ip6"


def flow_key(address: IPAddress) -> str:
    """The exact flow key. The map is per VIP, so the destination address is implied.

    IPv4: the key of the flow map ``f<sfx>`` (12 bytes). IPv6: the key of the closed-flow
    identity; the exact flow set ``x<sfx>`` adds the mark (:func:`exact_key`)."""
    return f"th sport . th dport . {_fam(address)} saddr"


def exact_key() -> str:
    """IPv6 exact flow set key: ports, mark, address. nft 1.0.6 asserts (netlink_linearize.c:799)
    on a set update whose key has anything after the IPv6 address, so the address is last."""
    return "th sport . th dport . meta mark . ip6 saddr"


def hint_key() -> str:
    """IPv6 hint map key (12 bytes): ports and a 32-bit hash of the client address.

    nft 1.0.6 stores an ``update @map { key : data }`` wrongly when the key is longer than 16
    bytes (the data register overlaps the key's fifth word: ``sport . dport . ip6 saddr``
    reads back with ``meta mark`` written into the address), so IPv6 flows cannot have an exact
    map. The hint map only finds a candidate mark; the exact set ``x<sfx>`` confirms it, so a
    hash collision costs only tracking for the colliding flow, never a wrong DIP."""
    return f"th sport . th dport . jhash ip6 saddr mod {HINT_MOD} seed 0x{HASH_SEED:08x}"


#: nft 1.0.6 crashes listing a map declared ``typeof ... jhash ...``: the hint map is declared
#: with ``numgen`` (also a 32-bit integer), which lists fine and accepts the jhash key.
HINT_TYPEOF = "th sport . th dport . numgen inc mod 2"
#: The IPv6 flow map of earlier versions (stored corrupted keys); removed where found.
LEGACY6 = "typeof th sport . th dport . ip6 saddr : meta mark; flags dynamic,timeout;"


@dataclass(frozen=True)
class _Flows:
    """nft statements of one VIP's flow state (per family)."""

    found: str  # sets meta mark to the flow's mark; no match without a (confirmed) entry
    record: str  # record/refresh with the flow timeout (an existing entry keeps its mark)
    closing: str  # record/refresh with the close timeout
    forget: str  # delete the entry (meta mark = its mark)


def _flows(rec: VipRecord, spec: TableSpec) -> _Flows:
    s = suffix(rec.address)
    tc = f" timeout {spec.close_timeout}s"
    if rec.address.version == 4:
        k = flow_key(rec.address)
        return _Flows(
            found=f"meta mark set {k} map @f{s}",
            record=f"update @f{s} {{ {k} : meta mark }}",
            closing=f"update @f{s} {{ {k}{tc} : meta mark }}",
            forget=f"delete @f{s} {{ {k} : meta mark }}",
        )
    h, x = hint_key(), exact_key()
    return _Flows(
        found=f"meta mark set {h} map @h{s} {x} @x{s}",
        record=f"update @h{s} {{ {h} : meta mark }} update @x{s} {{ {x} }}",
        closing=f"update @h{s} {{ {h}{tc} : meta mark }} update @x{s} {{ {x}{tc} }}",
        forget=f"delete @h{s} {{ {h} : meta mark }} delete @x{s} {{ {x} }}",
    )


def flow_objects(address: IPAddress) -> tuple[str, ...]:
    """Names of a VIP's flow-state objects (without the suffix)."""
    return ("f",) if address.version == 4 else ("h", "x")


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
    table = _maglev(tuple(str(d) for d in dips), table_size(len(dips), buckets_per_dip))
    marks = [rec.marks[d] for d in dips]
    return [marks[i] for i in table]


@functools.lru_cache(maxsize=256)
def _maglev(dips: tuple[str, ...], m: int) -> tuple[int, ...]:
    # The VIPs of one pool share their DIP sets: a batch of 100 such VIPs (old and new
    # tables of each update) computes each table once.
    return tuple(maglev_table(dips, m))


def _elements(pairs: Iterable[tuple[object, object]]) -> str:
    return ", ".join(f"{k} : {v}" for k, v in pairs)


def _dip_elements(rec: VipRecord) -> list[tuple[int, IPAddress]]:
    """DIP map elements: each mark, and the same mark with :data:`CLOSED` (closing flows are
    forwarded like open ones)."""
    out: list[tuple[int, IPAddress]] = []
    for d, mk in sorted(rec.marks.items(), key=lambda kv: kv[1]):
        out += [(mk, d), (mk | CLOSED, d)]
    return sorted(out)


def render_chain(rec: VipRecord, spec: TableSpec, m: int) -> list[str]:
    """The VIP chain's rules, in order (without the ``add rule <table> <chain>`` prefix).

    With tracking, TCP FIN and RST mark the flow closed (:data:`CLOSED` in its mark, the
    close timeout instead of the flow timeout): closed flows are not counted by drains, and a
    bare SYN on a closed flow's ports deletes it and is balanced afresh.

    Every rule a packet passes costs it (issue 16: the agent against the router's direct path),
    so the rules are ordered by how often they match: an established flow (nearly every
    packet) is decided by the first rule, with one flow lookup; a connection opener by the
    SYN rules before anything else; the rare cases (FIN/RST, closed flows, transit pins,
    other protocols) come after. A VIP whose DIP map has one DIP forwards to its address
    (no DIP-map lookup, no bucket hash: every bucket holds that DIP)."""
    s = suffix(rec.address)
    f = _fam(rec.address)
    hkey = f"{f} saddr . th sport . {f} daddr . th dport"
    only = next(iter(rec.marks.items())) if len(rec.marks) == 1 else None
    if only is not None:
        fwd = f'fwd {f} to {only[0]} device "{spec.interface}"'
    else:
        fwd = f'fwd {f} to meta mark map @d{s} device "{spec.interface}"'
    fl = _flows(rec, spec)
    seed = f"seed 0x{HASH_SEED:08x}"
    rules: list[str] = []
    active = rec.mode is not Mode.EMPTY and bool(rec.dips)
    # Other protocols have no ports: hash on addresses, no flow state.
    by_addr = f"meta mark set jhash {f} saddr . {f} daddr mod {m} {seed} map @b{s} "
    other = "meta l4proto != { tcp, udp } " + ("" if only else by_addr) + fwd
    chosen = (
        f"meta mark set {only[1]}"
        if only
        else f"meta mark set jhash {hkey} mod {m} {seed} map @b{s}"
    )
    is_closed = f"meta mark & 0x{CLOSED:08x} == 0x{CLOSED:08x}"
    is_open = f"meta mark & 0x{CLOSED:08x} == 0"
    close = "tcp flags & (fin | rst) != 0"
    bare_syn = "tcp flags & (syn | ack | fin | rst) == syn"
    set_closed = f"meta mark set meta mark | 0x{CLOSED:08x}"
    if rec.flow_tracking:
        tcp_udp = "meta l4proto { tcp, udp }"
        # established, open: one lookup, refresh, forward
        rules.append(f"tcp flags & (syn | fin | rst) == 0 {fl.found} {is_open} {fl.record} {fwd}")
        # UDP has no close: any entry is its flow (a closed mark forwards like an open one)
        rules.append(f"meta l4proto udp {fl.found} {fl.record} {fwd}")
        # a new connection on the ports of a closed one: forget the old one, choose afresh
        rules.append(f"{bare_syn} {fl.found} {is_closed} {fl.forget}")
        rules.append(f"{bare_syn} {fl.found} {fl.record} {fwd}")
        if active:
            # a transit pin holds only non-openers (and UDP): a bare SYN is balanced
            rules.append(f"{bare_syn} {chosen} {fl.record} {fwd}")
            if rec.transit is None:
                rules.append(f"meta l4proto udp {chosen} {fl.record} {fwd}")
            rules.append(other)
        # FIN/RST of an open flow: re-record it closed (update keeps an existing mark)
        rules.append(f"{close} {fl.found} {is_open} {fl.forget} {set_closed} {fl.closing} {fwd}")
        rules.append(f"{tcp_udp} {fl.found} {is_closed} {fl.closing} {fwd}")
        rules.append(f"{tcp_udp} {fl.found} {fl.record} {fwd}")
        if rec.transit is not None:
            pin = rec.marks[rec.transit.dip]
            hit = f"meta mark set {pin} update @th{rec.address.version} {{ {f} daddr }}"
            rules.append(f"{close} {hit} {set_closed} {fl.closing} {fwd}")
            rules.append(f"tcp flags & (syn | ack) != syn {hit} {fl.record} {fwd}")
            rules.append(f"meta l4proto udp {hit} {fl.record} {fwd}")
        if active:
            rules.append(f"{close} {chosen} {set_closed} {fl.closing} {fwd}")
            rules.append(f"meta l4proto {{ tcp, udp }} {chosen} {fl.record} {fwd}")
    elif active and only:
        rules.append(fwd)
    elif active:
        rules.append(f"meta l4proto {{ tcp, udp }} {chosen} {fwd}")
        rules.append(other)
    if not active:
        rules.append("meta l4proto tcp reject with tcp reset")
        rules.append("reject with icmpx host-unreachable")
    # A packet that found no DIP (cannot happen with a consistent map) must not leak into
    # the agent's own stack.
    rules.append("drop")
    return rules


def _flow_decls(address: IPAddress, spec: TableSpec) -> list[str]:
    t = f"netdev {spec.table}"
    s = suffix(address)
    opts = f"flags dynamic,timeout; timeout {spec.flow_timeout}s; size {spec.flow_table_size}; }}"
    if address.version == 4:
        return [f"add map {t} f{s} {{ typeof {flow_key(address)} : meta mark; {opts}"]
    return [
        f"add map {t} h{s} {{ typeof {HINT_TYPEOF} : meta mark; {opts}",
        f"add set {t} x{s} {{ typeof {exact_key()}; {opts}",
    ]


def _flush_flows(rec: VipRecord, spec: TableSpec) -> list[str]:
    t = f"netdev {spec.table}"
    s = suffix(rec.address)
    return [f"flush {'map' if p in 'fh' else 'set'} {t} {p}{s}" for p in flow_objects(rec.address)]


def _drop_legacy6(sfx: str, spec: TableSpec) -> list[str]:
    """Delete the IPv6 flow map of earlier versions if there is one (added first, so the
    delete cannot fail). Must follow the flush of the chain that referenced it."""
    t = f"netdev {spec.table}"
    return [f"add map {t} f{sfx} {{ {LEGACY6} }}", f"delete map {t} f{sfx}"]


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
        *_flow_decls(rec.address, spec),
        f"flush chain {t} v{s}",
        f"flush map {t} b{s}",
        f"flush map {t} d{s}",
    ]
    if rec.address.version == 6:
        out += _drop_legacy6(s, spec)
    if not rec.flow_tracking:
        out += _flush_flows(rec, spec)
    if marks:
        out.append(f"add element {t} b{s} {{ {_elements(enumerate(marks))} }}")
    dmap = _dip_elements(rec)
    if dmap:
        out.append(f"add element {t} d{s} {{ {_elements(dmap)} }}")
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
        out += _flush_flows(new, spec)
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
    old_d, new_d = dict(_dip_elements(old)), dict(_dip_elements(new))
    gone = sorted(mk for mk, d in old_d.items() if new_d.get(mk) != d)
    added = sorted((mk, d) for mk, d in new_d.items() if old_d.get(mk) != d)
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
    out += [f"delete map {t} {p}{sfx}" for p in "bd"]
    if addr.version == 4:
        out.append(f"delete map {t} f{sfx}")
    else:
        # added first: a VIP made by an earlier version has no hint map or exact set
        out += _flow_decls(addr, spec)
        out += [f"delete map {t} h{sfx}", f"delete set {t} x{sfx}", *_drop_legacy6(sfx, spec)]
    return out


def render_delete_flows(
    address: IPAddress,
    spec: TableSpec,
    flows: Sequence[FlowEntry],
    hints: Sequence[HintEntry] = (),
) -> list[str]:
    """Delete given flow entries of one VIP (a drain that timed out); for IPv6 also the given
    hint entries. Each element is added (with its own value: a no-op when it is there) before
    it is deleted, so an entry that expired since it was listed cannot fail the transaction."""
    t = f"netdev {spec.table}"
    s = suffix(address)
    out: list[str] = []
    if address.version == 4:
        keys = [(f"{e.client_port} . {e.vip_port} . {e.client}", e.raw_mark) for e in flows]
        if keys:
            out.append(f"add element {t} f{s} {{ {_elements(keys)} }}")
            out.append(f"delete element {t} f{s} {{ {', '.join(k for k, _ in keys)} }}")
        return out
    xkeys = [f"{e.client_port} . {e.vip_port} . {e.raw_mark} . {e.client}" for e in flows]
    if xkeys:
        out.append(f"add element {t} x{s} {{ {', '.join(xkeys)} }}")
        out.append(f"delete element {t} x{s} {{ {', '.join(xkeys)} }}")
    hkeys = [(f"{h.client_port} . {h.vip_port} . {h.digest}", h.raw_mark) for h in hints]
    if hkeys:
        out.append(f"add element {t} h{s} {{ {_elements(hkeys)} }}")
        out.append(f"delete element {t} h{s} {{ {', '.join(k for k, _ in hkeys)} }}")
    return out


@dataclass(frozen=True, slots=True)
class FlowEntry:
    """One flow the kernel holds for a VIP. ``mark`` is the DIP mark; ``closing``: the client
    sent FIN or RST (the entry lives on for ``close_timeout`` and is not counted by drains)."""

    client: str
    client_port: int
    vip_port: int
    mark: int
    expires: float | None
    closing: bool = False

    @property
    def raw_mark(self) -> int:
        """The mark as stored in the kernel (with :data:`CLOSED` for a closing flow)."""
        return self.mark | CLOSED if self.closing else self.mark


@dataclass(frozen=True, slots=True)
class HintEntry:
    """One element of an IPv6 VIP's hint map (ports, address hash -> raw mark)."""

    client_port: int
    vip_port: int
    digest: int
    raw_mark: int


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

    def hints(self, table: str, sfx: str) -> list[HintEntry]: ...

    def flow_counts(
        self, table: str, sfx: str, min_expires_ms: int | None = None
    ) -> Counter[int]: ...

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

    @property
    def netlink(self) -> bool:
        """Flow maps are read over netlink when ``nft`` runs in this process's namespace."""
        return self.argv == ["nft"]

    def flows(self, table: str, sfx: str) -> list[FlowEntry]:
        """The VIP's flows: IPv4 from its flow map, IPv6 from its exact flow set."""
        name = f"{'f' if sfx[0] == '4' else 'x'}{sfx}"
        if self.netlink:
            return decode_flows(int(sfx[0]), read_elements(table, name))
        kind = "map" if sfx[0] == "4" else "set"
        out: list[FlowEntry] = []
        for item in self._json(["list", kind, "netdev", table, name]):
            for el in item.get(kind, {}).get("elem", []):
                out.append(_flow_entry(el, sfx[0] == "4"))
        return out

    def flow_counts(self, table: str, sfx: str, min_expires_ms: int | None = None) -> Counter[int]:
        """Flows per raw mark (see :func:`count_flows`), without decoding entries."""
        if self.netlink:
            name = f"{'f' if sfx[0] == '4' else 'x'}{sfx}"
            return count_flows(int(sfx[0]), read_elements(table, name), min_expires_ms)
        return _count_entries(self.flows(table, sfx), min_expires_ms)

    def hints(self, table: str, sfx: str) -> list[HintEntry]:
        """An IPv6 VIP's hint-map elements (none for IPv4)."""
        if sfx[0] == "4":
            return []
        if self.netlink:
            return decode_hints(read_elements(table, f"h{sfx}"))
        out: list[HintEntry] = []
        for item in self._json(["list", "map", "netdev", table, f"h{sfx}"]):
            for key, mark in item.get("map", {}).get("elem", []):
                if isinstance(key, dict) and "elem" in key:
                    key = key["elem"]["val"]
                sport, dport, digest = key["concat"]
                out.append(HintEntry(int(sport), int(dport), int(digest), int(mark)))
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


def _flow_entry(el: Any, v4: bool) -> FlowEntry:
    """One element of ``nft -j list map f4_...`` ([key, mark]) or ``list set x6_...`` (key)."""
    key, mark = (el[0], el[1]) if v4 else (el, 0)
    expires: float | None = None
    if isinstance(key, dict) and "elem" in key:
        expires = key["elem"].get("expires")
        key = key["elem"]["val"]
    parts = key["concat"]
    if v4:
        sport, dport, client = parts
    else:
        sport, dport, mark, client = parts
    raw = int(mark)
    return FlowEntry(
        client=str(client),
        client_port=int(sport),
        vip_port=int(dport),
        mark=raw & ~CLOSED,
        expires=float(expires) if expires is not None else None,
        closing=bool(raw & CLOSED),
    )


def decode_flows(version: int, elements: Sequence[RawElement]) -> list[FlowEntry]:
    """Flow entries from kernel elements: IPv4 flow-map key ``sport . dport . saddr`` with the
    mark as data, IPv6 exact-set key ``sport . dport . mark . saddr``."""
    out: list[FlowEntry] = []
    append = out.append
    fam, lo, hi, klen = (AF_INET, 8, 12, 12) if version == 4 else (AF_INET6, 12, 28, 28)
    for k, data, exp in elements:
        if len(k) != klen:
            continue
        if version == 4:
            if data is None:
                continue
            raw = int.from_bytes(data, _HOST)
        else:
            raw = int.from_bytes(k[8:12], _HOST)
        append(
            FlowEntry(
                inet_ntop(fam, k[lo:hi]),
                (k[0] << 8) | k[1],
                (k[4] << 8) | k[5],
                raw & ~CLOSED,
                exp / 1000.0 if exp is not None else None,
                bool(raw & CLOSED),
            )
        )
    return out


def count_flows(
    version: int, elements: Sequence[RawElement], min_expires_ms: int | None = None
) -> Counter[int]:
    """Raw marks (:data:`CLOSED` included) of the elements, optionally only of those expiring
    at or after ``min_expires_ms``: what drain waits and metrics need, without decoding."""
    out: Counter[int] = Counter()
    for k, data, exp in elements:
        if min_expires_ms is not None and exp is not None and exp < min_expires_ms:
            continue
        raw = data if version == 4 else k[8:12]
        if raw is not None and len(raw) == 4:
            out[int.from_bytes(raw, _HOST)] += 1
    return out


def _count_entries(entries: Sequence[FlowEntry], min_expires_ms: int | None) -> Counter[int]:
    floor = None if min_expires_ms is None else min_expires_ms / 1000.0
    return Counter(
        e.raw_mark for e in entries if floor is None or e.expires is None or e.expires >= floor
    )


def decode_hints(elements: Sequence[RawElement]) -> list[HintEntry]:
    return [
        HintEntry(port(k, 0), port(k, 4), host_u32(k[8:12]), host_u32(data))
        for k, data, _ in elements
        if len(k) == 12 and data is not None
    ]


class RecordingDataplane:
    """A dataplane that only records transactions (``--dry-run`` style, and unit tests without
    root). ``flow_entries[sfx]`` is what :meth:`flows` returns for a VIP."""

    def __init__(self) -> None:
        self.transactions: list[list[str]] = []
        self.flow_entries: dict[str, list[FlowEntry]] = {}
        self.hint_entries: dict[str, list[HintEntry]] = {}
        self.counter_values: dict[str, VipCounters] = {}
        self.table = KernelTable(False, frozenset(), {})

    def apply(self, commands: Sequence[str]) -> None:
        self.transactions.append(list(commands))

    def kernel_table(self, table: str) -> KernelTable:
        return self.table

    def flows(self, table: str, sfx: str) -> list[FlowEntry]:
        return list(self.flow_entries.get(sfx, []))

    def hints(self, table: str, sfx: str) -> list[HintEntry]:
        return list(self.hint_entries.get(sfx, []))

    def flow_counts(self, table: str, sfx: str, min_expires_ms: int | None = None) -> Counter[int]:
        return _count_entries(self.flows(table, sfx), min_expires_ms)

    def counters(self, table: str) -> dict[str, VipCounters]:
        return dict(self.counter_values)
