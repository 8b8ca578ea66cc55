"""``lbauto play``: Ansible-style playbooks over lbauto's library.

:func:`read_play` reads and checks a playbook (every problem at once, ``file:line``), and
:func:`run_play` runs it, reporting through a :class:`~lbauto.play.runner.Report` (the CLI uses
:class:`~lbauto.play.recap.TextReport`). The modules are in :mod:`lbauto.play.modules`, their
arguments in :mod:`lbauto.play.models`; docs/playbooks.md documents both.
"""

from __future__ import annotations

from lbauto.play.parser import Play, Task, read_play
from lbauto.play.recap import Stats, TextReport
from lbauto.play.runner import PlayResult, run_play

__all__ = ["Play", "PlayResult", "Stats", "Task", "TextReport", "read_play", "run_play"]
