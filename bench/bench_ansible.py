"""Control plane beside its peer: lbauto's render against Ansible's ``template`` module.

    .venv/bin/python bench/bench_ansible.py [--vips 1000,10000] [--routers 10,100] [--runs 3]
        [--sizes 1000x5,1000x100,10000x100] [--ansible-budget 600] [--json]

The same hosts (FRR routers, static routes) and VIPs (bench/bench_core.py's mix); both
render lbauto's own FRR template (templates/frr/config.j2) into one full config per router:

- lbauto: ``load_inventory`` + the intent + ``render_config`` for every router, in a fresh
  process (the ``lbauto render`` path; routers of one profile render once);
- Ansible: ``ansible-playbook`` (ansible-core, local connection, ``gather_facts: false``, the
  default 5 forks) running one ``template`` task per host, with the template's variables
  (lbauto's rows for that router) given as host_vars: the variables are prepared before the
  clock starts, so Ansible is timed on rendering and writing alone, from process start to exit.

Each Ansible output is compared with lbauto's (the same bytes), so both did the same work.
Sizes run in order (VIP counts, then router counts within each; or ``--sizes`` as given).
Where a size would take Ansible more than ``--ansible-budget`` seconds (default 600) for its
runs, by the per-host time measured at a smaller fleet of the same VIP count (or, for a larger
VIP count, at the largest one measured, scaled by the VIPs), Ansible is not run there and its
time is extrapolated and marked so, with the basis.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import write_inventory

REPO = Path(__file__).resolve().parents[1]


def frr_hosts(root: Path, n: int) -> None:
    """Replace the inventory's hosts with ``n`` FRR routers, static method (FRR numbers PBR
    rules up to 700: 1k VIPs need static routes)."""
    hosts = [
        f"r{i}:\n  hostname: 198.18.{i // 250}.{i % 250 + 1}\n  platform: frr\n"
        "  data:\n    lbauto_method: static\n"
        for i in range(n)
    ]
    (root / "hosts.yaml").write_text("".join(hosts))


def lbauto_render(inv_dir: Path, out: Path | None) -> dict[str, float]:
    from lbauto.cli import tune_gc
    from lbauto.core.intent import desired_objects
    from lbauto.inventory import load_inventory
    from lbauto.platforms.render import render_config

    tune_gc()
    c0, t0 = time.process_time(), time.perf_counter()
    inv = load_inventory(inv_dir)
    texts = {}
    for router in inv.routers:
        objs = desired_objects(inv, router, frozenset())
        texts[router.name] = render_config(router, objs, template_dir=inv.template_dir)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            (out / f"{name}.conf").write_text(text)
    return {"wall_s": wall, "cpu_s": cpu, "lines": sum(t.count("\n") for t in texts.values())}


def ansible_vars(inv_dir: Path, dest: Path) -> None:
    """host_vars/<router>.json: the rows lbauto's template reads, for each router."""
    from lbauto.core.intent import desired_objects
    from lbauto.inventory import load_inventory
    from lbauto.platforms import render as r

    inv = load_inventory(inv_dir)
    (dest / "host_vars").mkdir(parents=True)
    hosts = []
    for router in inv.routers:
        objs = desired_objects(inv, router, frozenset())
        ctx = r._context(router, (), objs, (), full=True)
        (dest / "host_vars" / f"{router.name}.json").write_text(json.dumps(ctx, default=str))
        hosts.append(router.name)
    (dest / "hosts.ini").write_text(
        "[routers]\n" + "".join(f"{h} ansible_connection=local\n" for h in hosts)
    )
    (dest / "site.yml").write_text(
        "- hosts: routers\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.template:\n"
        f"        src: {REPO / 'templates' / 'frr' / 'config.j2'}\n"
        f"        dest: {dest / 'out'}/{{{{ inventory_hostname }}}}.conf\n"
        "        trim_blocks: true\n        lstrip_blocks: true\n"
    )
    (dest / "out").mkdir()


def ansible_run(dest: Path) -> dict[str, float]:
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(dest / "tmp"), ANSIBLE_HOME=str(dest / "home"),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)  # fmt: skip
    shutil.rmtree(dest / "out", ignore_errors=True)
    (dest / "out").mkdir()
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run([str(bin_dir / "ansible-playbook"), "-i", str(dest / "hosts.ini"),
                        str(dest / "site.yml")], cwd=dest, env=env, capture_output=True,
                       text=True, check=False)  # fmt: skip
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"ansible-playbook failed: {p.stdout[-2000:]}{p.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu}


def same_output(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names
    )


def one_size(
    args: argparse.Namespace, v: int, n: int, per_host: dict[int, float]
) -> dict[str, Any]:
    """lbauto and Ansible on ``v`` VIPs x ``n`` FRR routers, in alternation, or lbauto alone
    with Ansible's time extrapolated: from its seconds per host at ``v`` VIPs if a smaller
    fleet measured it, else from the largest VIP count measured, scaled by the VIPs (its
    render is the template's loop over them; the per-host overhead is scaled too, so the
    estimate errs high)."""
    row: dict[str, Any] = {"vips": v, "routers": n, "lbauto": [], "ansible": []}
    est = basis = None
    if v in per_host:
        est, basis = per_host[v] * n, f"{v} VIPs, smaller fleet"
    elif per_host:
        w = max(per_host)
        est, basis = per_host[w] * v / w * n, f"{w} VIPs, scaled by VIPs"
    run_ansible = est is None or est * args.runs <= args.ansible_budget
    with tempfile.TemporaryDirectory(prefix="dp-ansible-") as tmp:
        root = Path(tmp)
        inv = root / "inv"
        inv.mkdir()
        write_inventory(inv, v, n)
        frr_hosts(inv, n)
        if run_ansible:
            ansible_vars(inv, root / "ansible")
        for i in range(args.runs):  # the two in alternation
            out = str(root / "lbauto-out") if i == 0 and run_ansible else ""
            res = subprocess.run([sys.executable, __file__, "--child", f"{inv},{out}"],
                                 check=True, capture_output=True, text=True)  # fmt: skip
            row["lbauto"].append(json.loads(res.stdout))
            if run_ansible:
                row["ansible"].append(ansible_run(root / "ansible"))
        if run_ansible:
            row["same_output"] = same_output(root / "lbauto-out", root / "ansible" / "out")
            per_host[v] = statistics.median(x["wall_s"] for x in row["ansible"]) / n
        else:
            row["ansible_extrapolated_s"] = est
            row["extrapolated_from"] = basis
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--vips", default="1000", help="comma-separated VIP counts")
    ap.add_argument("--routers", default="10,100")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", help="VIPSxROUTERS,... in this order (instead of the product "
                    "of --vips and --routers), e.g. 1000x5,1000x100,10000x100")  # fmt: skip
    ap.add_argument("--ansible-budget", type=float, default=600.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        inv_dir, out = args.child.split(",")
        print(json.dumps(lbauto_render(Path(inv_dir), Path(out) if out else None)))
        return
    if not (Path(sys.executable).parent / "ansible-playbook").exists():
        sys.exit("ansible-core is not installed (pip install -e '.[bench]')")
    rows: list[dict[str, Any]] = []
    #: Ansible's measured seconds per host, by VIP count: the basis of every extrapolation.
    per_host: dict[int, float] = {}
    load = [os.getloadavg()[0]]
    sizes = [(int(v), int(n)) for v in args.vips.split(",") for n in args.routers.split(",")]
    if args.sizes:
        sizes = [(int(v), int(n)) for v, n in (x.split("x") for x in args.sizes.split(","))]
    for v, n in sizes:
        rows.append(one_size(args, v, n, per_host))
        load.append(os.getloadavg()[0])
    doc = {"rows": rows, "load": load, "runs": args.runs}
    for r in rows:
        lw = [x["wall_s"] for x in r["lbauto"]]
        lc = [x["cpu_s"] for x in r["lbauto"]]
        line = (f"{r['vips']} VIPs x {r['routers']} FRR routers: lbauto render wall median "
                f"{statistics.median(lw):.3f} s ({min(lw):.3f}-{max(lw):.3f}), CPU "
                f"{statistics.median(lc):.3f} s; ")  # fmt: skip
        if r["ansible"]:
            aw = [x["wall_s"] for x in r["ansible"]]
            ac = [x["cpu_s"] for x in r["ansible"]]
            line += (f"ansible-playbook wall median {statistics.median(aw):.1f} s "
                     f"({min(aw):.1f}-{max(aw):.1f}), CPU {statistics.median(ac):.1f} s, "
                     f"{statistics.median(aw) / statistics.median(lw):.0f}x lbauto; "
                     f"same bytes: {r['same_output']}")  # fmt: skip
        else:
            line += (f"Ansible extrapolated {r['ansible_extrapolated_s']:.0f} s (not run; from "
                     f"{r['extrapolated_from']})")  # fmt: skip
        print(line)
    print(f"load average: {load}")
    if args.json:
        print(json.dumps(doc))


if __name__ == "__main__":
    main()
