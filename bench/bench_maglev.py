"""Maglev table build time for N = 100 DIPs, M = 65537 (the Maglev paper: 1.8 ms in C++)."""

from __future__ import annotations

import statistics
import time

from lbauto.agent.maglev import maglev_table, table_size


def main() -> None:
    dips = [f"198.51.{i // 250}.{i % 250 + 1}" for i in range(100)]
    runs = []
    for _ in range(20):
        t0 = time.perf_counter()
        maglev_table(dips, 65537)
        runs.append(time.perf_counter() - t0)
    print(f"maglev N=100 M=65537: median {statistics.median(runs) * 1000:.1f} ms, "
          f"min {min(runs) * 1000:.1f} ms over {len(runs)} runs (pure Python)")  # fmt: skip
    for n in (2, 3, 10, 100):
        m = table_size(n)
        t0 = time.perf_counter()
        maglev_table(dips[:n], m)
        print(f"agent default table: N={n} M={m}: {(time.perf_counter() - t0) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
