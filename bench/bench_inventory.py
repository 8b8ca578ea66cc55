#!/usr/bin/env python3
"""Benchmark: ``load_inventory`` (YAML parse + every check) on synthetic inventories.

Usage: ``python bench/bench_inventory.py [--vips 1000,10000,100000] [--routers 100]``, or
``--hostile``: time and count the output of hostile inventories (symlinked secrets, an alias
bomb, a 50 MB junk file, a flood of bad entries); it uses only ``load_inventory(path)``, so it
also runs against older versions of lbauto (``PYTHONPATH=<old checkout>``).
Target (issue 2): 10,000 VIPs load in well under 0.5 s. Prints one line per size (best of
``--repeat`` loads, default 5): the whole load, then the same load with PyYAML instead of the
fast line reader (does ``_fastyaml`` still pay?), then the routers alone (Nornir's loader +
lbauto's checks).
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import tempfile
import time
from pathlib import Path

from lbauto.core.addresses import parse_address
from lbauto.inventory import _fastyaml, load_inventory

PLATFORMS = ["frr", "eos", "ios", "nxos", "junos"]


def write_inventory(root: Path, n_vips: int, n_routers: int, seed: int = 42) -> None:
    """~70 % single-DIP VIPs, the rest 2..50 DIPs, 5 % IPv6; routers on all platforms."""
    rnd = random.Random(seed)
    hosts = [
        f"r{i}:\n  hostname: 198.18.{i // 250}.{i % 250 + 1}\n"
        f"  platform: {PLATFORMS[i % 5]}\n  data:\n"
        + (
            "    lbauto_method: pbr\n    lbauto_ingress: [eth1]\n"
            if i % 5 == 1
            else "    lbauto_tag: 4242\n"
        )
        for i in range(n_routers)
    ]
    (root / "hosts.yaml").write_text("".join(hosts))
    (root / "agents.yaml").write_text(
        "agents:\n  - name: lb1\n    api: http://198.18.100.1:8080\n    address: 198.51.100.10\n"
        "    address6: 2001:db8:100::10\n    token_env: LBAUTO_TOKEN_LB1\n"
    )
    v4_vip, v4_dip = ipaddress.ip_address("198.19.0.0"), ipaddress.ip_address("198.18.128.0")
    v6_vip, v6_dip = ipaddress.ip_address("2001:db8:10::"), ipaddress.ip_address("2001:db8:100::")
    lines = ["vips:\n"]
    for i in range(n_vips):
        v6 = i % 20 == 7
        n = 1 if rnd.random() < 0.7 else rnd.randint(2, 50)
        base = v6_dip if v6 else v4_dip
        dips = sorted({base + rnd.randint(1, 30000) for _ in range(n)}, key=int)
        lines.append(f"  - name: vip{i}\n    address: {(v6_vip if v6 else v4_vip) + i + 1}\n")
        lines.append(f"    dips: [{', '.join(map(str, dips))}]\n")
    (root / "vips.yaml").write_text("".join(lines))


def best_of(root: Path, repeat: int) -> tuple[float, float, int]:
    wall = cpu = float("inf")
    dips = 0
    for _ in range(repeat):
        parse_address.cache_clear()  # every run cold, as in a fresh process
        start, start_cpu = time.perf_counter(), time.process_time()
        inv = load_inventory(root)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
        dips = sum(len(v.dips) for v in inv.vips)
    return wall, cpu, dips


def _no_fast_reader(text: str) -> object:
    raise _fastyaml.UnsupportedError("benchmark: PyYAML only")


SECRET = "s3cr3t-token-value"
AGENTS = "agents:\n  - {name: lb1, api: 'https://lb1:8443', address: 198.51.100.10, token_env: T}\n"
VIPS = "vips:\n  - {name: web, address: 192.0.2.10, dips: [198.51.100.21]}\n"


def _hostile_inventory(base: Path, files: dict[str, str]) -> Path:
    root = base / f"inv{len(list(base.iterdir()))}"
    root.mkdir()
    for name, text in {"agents": AGENTS, "vips": VIPS, **files}.items():
        (root / f"{name}.yaml").write_text(text)
    return root


def _run(label: str, root: Path, timeout: int) -> list[str]:
    """Load with a wall-clock limit (SIGALRM), print time, line count and the first line."""
    import signal

    from lbauto.errors import InventoryError

    def expired(*_: object) -> None:
        raise TimeoutError(f"still running after {timeout} s")

    signal.signal(signal.SIGALRM, expired)
    signal.alarm(timeout)
    start = time.perf_counter()
    try:
        load_inventory(root)
        lines = ["loaded without error"]
    except InventoryError as err:
        lines = err.problems
    except TimeoutError as err:
        lines = [str(err)]
    finally:
        signal.alarm(0)
    took = time.perf_counter() - start
    print(f"[{label}] {took:.1f} s, {len(lines)} lines; first: {lines[0][:150]!r}")
    return lines


def hostile() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "secret.txt").write_text(f"{SECRET}\n")
        for name in ("hosts", "groups", "defaults", "lbauto"):
            root = _hostile_inventory(base, {})
            (root / f"{name}.yaml").symlink_to(base / "secret.txt")
            lines = _run(f"{name}.yaml symlinked to a secret", root, 20)
            print(f"    secret printed: {any(SECRET in line for line in lines)}")
        root = _hostile_inventory(base, {"lbauto": "template_dir: ../elsewhere\n"})
        _run("template_dir: ../elsewhere", root, 20)
        bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
        _run(
            "alias bomb", _hostile_inventory(base, {"vips": "\n".join(bomb) + "\nvips: *a8\n"}), 20
        )
        junk = "- junk line that is not a VIP\n"
        big = "vips:\n" + junk * (50 * 2**20 // len(junk))
        _run("50 MB junk vips.yaml", _hostile_inventory(base, {"vips": big}), 180)
        flood = "vips:\n" + "  - junk\n" * 5000
        _run("5000 junk entries", _hostile_inventory(base, {"vips": flood}), 60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vips", default="1000,10000,100000")
    parser.add_argument("--routers", type=int, default=100)
    parser.add_argument("--hostile", action="store_true", help="time hostile inventories")
    parser.add_argument("--repeat", type=int, default=5, help="loads per figure (best of N)")
    args = parser.parse_args()
    if args.hostile:
        hostile()
        return
    for n in (int(x) for x in args.vips.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            write_inventory(root, n, args.routers)
            wall, cpu, dips = best_of(root, args.repeat)
            print(
                f"load_inventory: {n:>7} VIPs ({dips:>6} DIPs) x {args.routers} routers: "
                f"{wall * 1000:7.1f} ms wall, {cpu * 1000:7.1f} ms CPU (best of {args.repeat})"
            )
            fast = _fastyaml.parse
            _fastyaml.parse = _no_fast_reader
            try:
                wall, cpu, _ = best_of(root, args.repeat)
            finally:
                _fastyaml.parse = fast
            print(
                f"  with PyYAML only (no fast reader): {wall * 1000:7.1f} ms wall, "
                f"{cpu * 1000:7.1f} ms CPU"
            )
            (root / "vips.yaml").write_text("vips: []\n")
            wall, cpu, _ = best_of(root, args.repeat)
            print(
                f"  routers only ({args.routers}, via Nornir): {wall * 1000:7.1f} ms wall, "
                f"{cpu * 1000:7.1f} ms CPU"
            )


if __name__ == "__main__":
    main()
