"""Maglev consistent hashing (Eisenbud et al., NSDI 2016) for the agent's bucket tables.

The table must be the same on every agent of a pool, so the hashes come from ``hashlib.blake2b``
(never Python's per-process randomised ``hash()``) and the table size is a pure function of the
DIP count.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

#: The smallest table, so a single-DIP VIP still has a table that new DIPs can share evenly.
MIN_TABLE_SIZE = 257
#: Buckets per DIP: with Maglev's round-robin fill every DIP owns floor(M/N) or ceil(M/N)
#: buckets, so M >= 100 x N keeps the imbalance under 1%.
BUCKETS_PER_DIP = 100


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


def next_prime(n: int) -> int:
    """The smallest prime >= n."""
    while not is_prime(n):
        n += 1
    return n


def table_size(dip_count: int, buckets_per_dip: int = BUCKETS_PER_DIP) -> int:
    """Table size M for ``dip_count`` DIPs: a prime >= buckets_per_dip x N.

    N is first rounded up to a power of two, so adding or removing a DIP usually keeps M (and the
    Maglev minimal-disruption property); a change of M reshuffles every bucket.
    """
    if dip_count < 0:
        raise ValueError("dip_count must be >= 0")
    n = 1
    while n < dip_count:
        n *= 2
    return next_prime(max(MIN_TABLE_SIZE, buckets_per_dip * n))


def _hash(name: str, salt: bytes) -> int:
    digest = hashlib.blake2b(name.encode(), digest_size=8, salt=salt).digest()
    return int.from_bytes(digest, "big")


def maglev_table(dips: Sequence[str], m: int) -> list[int]:
    """Maglev lookup table of size ``m`` (prime): entry j is an index into ``dips``.

    Deterministic for the same ``dips`` (order included) and ``m``. Empty ``dips`` gives ``[]``.
    """
    if not dips:
        return []
    if not is_prime(m):
        raise ValueError(f"Maglev table size must be prime, got {m}")
    if len(set(dips)) != len(dips):
        raise ValueError("Maglev DIP names must be unique")
    n = len(dips)
    # pos[i] walks DIP i's permutation offset, offset+skip, ... (mod m) incrementally
    pos = [_hash(d, b"offset") % m for d in dips]
    skips = [_hash(d, b"skip") % (m - 1) + 1 for d in dips]
    table = [-1] * m
    filled = 0
    while True:
        for i in range(n):
            c, skip = pos[i], skips[i]
            while table[c] >= 0:
                c += skip
                if c >= m:
                    c -= m
            table[c] = i
            c += skip
            pos[i] = c - m if c >= m else c
            filled += 1
            if filled == m:
                return table
