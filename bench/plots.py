"""Tables and plots of the peer benchmarks (bench_dataplane, bench_peers_bypass, bench_ansible).

``bench/run`` renders each benchmark's JSON document (its last output line) into markdown with
the ``*_lines`` functions and draws the PNGs under docs/img/ with :func:`draw` (matplotlib, the
``bench`` extra). By hand, from saved documents::

    .venv/bin/python bench/plots.py --dataplane dp.json --ansible ansible.json --core core.txt
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
IMG = REPO / "docs" / "img"
CONN = "conn/s"
TARGET_DIRECT, TARGET_HAPROXY = 0.95, 3.0


def _m(xs: list[float]) -> float:
    return statistics.median(xs)


def _cell(xs: list[float] | None, digits: int = 0) -> str:
    if not xs:
        return "-"
    return f"{_m(xs):,.{digits}f} ({min(xs):,.{digits}f}-{max(xs):,.{digits}f})"


def _mark(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def dataplane_lines(doc: dict[str, Any]) -> list[str]:
    metrics = [
        ("conn/s", 0),
        ("req/s", 0),
        ("1-flow Gbit/s", 2),
        ("4-flow Gbit/s", 2),
        ("CPU s/GB (4-flow)", 2),
        ("us/pkt est", 2),
        ("us/pkt new", 2),
    ]
    load = ", ".join(f"{x:.1f}" for x in doc["load"])
    out = [
        f"{doc['rounds']} rounds of {doc['seconds']} s per figure, every path in each round "
        f"(start rotated), in {doc['wall_s']:.0f} s; load average (1 min) at the start and "
        f"after each round: {load}. Median (range); the ratio is to the direct path's median.",
        "",
    ]
    for fam, paths in doc["results"].items():
        present = [(m, d) for m, d in metrics if any(m in ms for ms in paths.values())]
        out += [
            f"| {fam} path | " + " | ".join(m for m, _ in present) + " |",
            "| --- " * (len(present) + 1) + "|",
        ]
        direct = paths.get("direct", {})
        for p, ms in paths.items():
            cells = []
            for m, d in present:
                c = _cell(ms.get(m), d)
                if ms.get(m) and direct.get(m) and not m.startswith(("CPU", "us/")):
                    c += f" {_m(ms[m]) / _m(direct[m]):.2f}x"
                cells.append(c)
            out.append(f"| {p} | " + " | ".join(cells) + " |")
        on, hap = paths.get("agent on", {}), paths.get("haproxy", {})
        if on.get(CONN) and direct.get(CONN) and hap.get(CONN):
            r_d = _m(on[CONN]) / _m(direct[CONN])
            r_h = _m(on[CONN]) / _m(hap[CONN])
            out += [
                "",
                f"{fam} targets, new connections per second, agent (tracking on): "
                f"{r_d:.2f}x direct (target >= {TARGET_DIRECT}x: {_mark(r_d >= TARGET_DIRECT)}), "
                f"{r_h:.2f}x HAProxy (target >= {TARGET_HAPROXY}x: "
                f"{_mark(r_h >= TARGET_HAPROXY)}).",
            ]
        out.append("")
    return out


def bypass_lines(doc: dict[str, Any]) -> list[str]:
    res = doc["results"]
    load = ", ".join(f"{x:.1f}" for x in doc["load"])
    out = [
        f"{doc['vips']} VIPs, {doc['single']} of them single-DIP; {doc['rounds']} rounds "
        f"(before, after), each switch a real `run_apply`; load average {load}.",
        "",
        "| per workload run | before: every VIP through the agent | after `apply` (bypass) |",
        "| --- | --- | --- |",
    ]
    for k in res["before"]:
        digits = 1 if "per" in k or "CPU" in k else 0
        out.append(
            f"| {k} | {_cell(res['before'][k], digits)} | {_cell(res['after'][k], digits)} |"
        )
    a = doc["apply_s"]
    out += ["", f"`apply` before -> after: median {_m(a):.2f} s ({min(a):.2f}-{max(a):.2f})."]
    return out


def ansible_lines(doc: dict[str, Any]) -> list[str]:
    load = ", ".join(f"{x:.1f}" for x in doc["load"])
    out = [
        f"{doc['runs']} runs each, in alternation; load average {load}. Wall s median "
        "(range); CPU s median.",
        "",
        "| VIPs | FRR routers | lbauto render wall s | lbauto CPU s | ansible-playbook wall s "
        "| Ansible CPU s | Ansible / lbauto (wall) | same bytes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in doc["rows"]:
        lw = [x["wall_s"] for x in r["lbauto"]]
        lc = [x["cpu_s"] for x in r["lbauto"]]
        if r["ansible"]:
            aw = [x["wall_s"] for x in r["ansible"]]
            ac = [x["cpu_s"] for x in r["ansible"]]
            a_cells = (f"{_cell(aw, 1)} | {_m(ac):.1f} | {_m(aw) / _m(lw):.0f}x "
                       f"| {r['same_output']}")  # fmt: skip
        else:
            est = r["ansible_extrapolated_s"]
            basis = r.get("extrapolated_from", "the smaller size")
            a_cells = (f"~{est:.0f} (not run: extrapolated from {basis}) | - "
                       f"| ~{est / _m(lw):.0f}x | -")  # fmt: skip
        out.append(f"| {r['vips']:,} | {r['routers']} | {_cell(lw, 3)} | {_m(lc):.3f} "
                   f"| {a_cells} |")  # fmt: skip
    return out


def core_rows(text: str) -> list[tuple[int, float, float]]:
    """(VIPs, plan path s, render path s) from bench_core.py's printed table."""
    rows = []
    for ln in text.splitlines():
        cells = [c.strip() for c in ln.split("|")]
        if len(cells) >= 8 and cells[0].isdigit():
            rows.append((int(cells[0]), float(cells[6]), float(cells[7])))
    return rows


def draw(
    dataplane: dict[str, Any] | None,
    ansible: dict[str, Any] | None,
    core: list[tuple[int, float, float]],
    img: Path = IMG,
) -> list[Path]:
    """PNGs under ``img`` (docs/img/); returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img.mkdir(parents=True, exist_ok=True)
    written = []
    if dataplane:
        res = dataplane["results"]
        fams = list(res)
        fig, axes = plt.subplots(1, 3, figsize=(13, 4))
        for ax, metric in zip(axes, ("conn/s", "req/s", "4-flow Gbit/s"), strict=True):
            paths = [p for p in res[fams[0]] if metric in res[fams[0]][p]]
            width = 0.8 / max(len(fams), 1)
            for i, fam in enumerate(fams):
                vals = [_m(res[fam][p][metric]) if metric in res[fam].get(p, {}) else 0
                        for p in paths]  # fmt: skip
                lo = [
                    v - min(res[fam][p][metric]) if v else 0
                    for v, p in zip(vals, paths, strict=True)
                ]
                hi = [
                    max(res[fam][p][metric]) - v if v else 0
                    for v, p in zip(vals, paths, strict=True)
                ]
                xs = [j + i * width for j in range(len(paths))]
                ax.bar(xs, vals, width, yerr=[lo, hi], label=fam, capsize=2)
            ax.set_xticks([j + width * (len(fams) - 1) / 2 for j in range(len(paths))])
            ax.set_xticklabels(paths, rotation=30, ha="right", fontsize=8)
            ax.set_title(metric)
            ax.legend(fontsize=8)
        fig.suptitle("Data plane per path (median, bars: range over rounds)")
        fig.tight_layout()
        path = img / "dataplane-paths.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    if core or ansible:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        if core:
            ax.plot([r[0] for r in core], [r[1] for r in core], "o-", label="lbauto plan path")
            ax.plot([r[0] for r in core], [r[2] for r in core], "s-", label="lbauto render path")
        if ansible:
            for r in ansible["rows"]:
                if r["ansible"]:
                    y = _m([x["wall_s"] for x in r["ansible"]])
                    ax.plot([r["vips"]], [y], "^", ms=9,
                            label=f"Ansible template, {r['routers']} FRR routers")  # fmt: skip
                else:
                    ax.plot([r["vips"]], [r["ansible_extrapolated_s"]], "v", ms=9, mfc="none",
                            label=f"Ansible, {r['routers']} routers (extrapolated)")  # fmt: skip
                y = _m([x["wall_s"] for x in r["lbauto"]])
                ax.plot([r["vips"]], [y], "x", ms=9,
                        label=f"lbauto render, {r['routers']} FRR routers")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("VIPs (lbauto lines: 100 routers, five platforms)")
        ax.set_ylabel("seconds (wall)")
        ax.set_title("Control-plane cost against VIPs")
        ax.grid(True, which="both", alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        seen = dict(zip(labels, handles, strict=True))  # one entry per label (sizes repeat)
        ax.legend(seen.values(), seen.keys(), fontsize=7)
        fig.tight_layout()
        path = img / "cost-vs-vips.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def _last_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text().strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dataplane", type=Path)
    ap.add_argument("--ansible", type=Path)
    ap.add_argument("--core", type=Path, help="bench_core.py's printed output")
    args = ap.parse_args()
    dp = _last_json(args.dataplane) if args.dataplane else None
    an = _last_json(args.ansible) if args.ansible else None
    core = core_rows(args.core.read_text()) if args.core else []
    for p in draw(dp, an, core):
        print(p)


if __name__ == "__main__":
    main()
