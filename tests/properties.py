"""How hard the property tests look: ``examples(n)`` is the number of hypothesis examples a
property runs, ``n`` being its figure for a thorough run.

The default run (``make test``, ``make test-fast``) takes half of each figure, which keeps the
unit tier under 30 s; hypothesis's example database (``.hypothesis/``) replays every failure it
has found first, whatever the count. After a change to the planner, the inventory readers or
the parsers, run them harder: ``LBAUTO_PROPERTY_SCALE=4 make test-fast``.
"""

from __future__ import annotations

import os

SCALE = float(os.environ.get("LBAUTO_PROPERTY_SCALE", "0.5"))


def examples(thorough: int) -> int:
    return max(10, round(thorough * SCALE))
