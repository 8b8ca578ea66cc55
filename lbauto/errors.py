"""The lbauto exception tree.

    LbautoError                  root: the CLI prints ``str(err)`` on one line and exits 1
    ├── InventoryError           inventory files are missing or invalid (carries every problem)
    ├── StateError               an observed-state file or live observation is unusable
    ├── RenderError              a template is missing or failed for a platform
    ├── PushError                a router push, verification or rollback failed
    │   └── PushAbortedError     a push failed somewhere; every router it changed was rolled back
    ├── AgentError               an agent API call failed (HTTP error, auth, conflict, timeout)
    │   └── ConflictError        the VIP changed meanwhile (HTTP 412 on If-Match)
    ├── BgpSpeakerError          the agent's BGP speaker (FRR bgpd/bfdd) failed to start or change
    ├── ConfigError              the agent's own configuration (file, flags, token) is invalid
    ├── RequestError             the agent refuses an API request (carries the HTTP status)
    ├── TransitionError          a transition step failed (names VIP, step, device, cause)
    ├── LockedError              another apply holds the inventory's lock (names the holder)
    ├── AbortedError             the operator declined the plan
    ├── PlaybookError            a playbook is invalid (carries every problem, file:line each)
    ├── PlanFileError            a saved plan file is unreadable or of an unknown format
    ├── StalePlanError           a saved plan no longer matches inventory or live state
    ├── JournalError             the journal (inventory state directory) cannot be written
    ├── BackendError             the shared lock and journal (etcd) refused or failed a request
    │   └── BackendUnavailableError  no etcd endpoint answered: nothing was changed
    ├── EditConflictError        vips.yaml changed under ``scale`` in a way it cannot merge
    └── LabError                 the namespace lab could not be built, used or removed

Vendor and library exceptions are caught where lbauto calls them, cleaned up after, and
re-raised as one of these with a message a network engineer understands.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lbauto.push.pipeline import PushResult


class LbautoError(Exception):
    """Root of all errors lbauto raises on purpose."""


class InventoryError(LbautoError):
    """Invalid inventory. ``problems`` holds one line per problem, each naming file and entry."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems) if self.problems else "invalid inventory")


class StateError(LbautoError):
    """Observed state cannot be read or parsed."""


class RenderError(LbautoError):
    """Rendering router configuration failed."""


class PushError(LbautoError):
    """A router push, verification or rollback failed."""

    def __init__(self, message: str, router: str | None = None) -> None:
        self.router = router
        super().__init__(f"{router}: {message}" if router else message)


class PushAbortedError(PushError):
    """A push failed on some router; every router changed by the call was rolled back.
    ``result`` holds the per-router outcome (for the result table)."""

    def __init__(self, message: str, router: str | None, result: PushResult) -> None:
        super().__init__(message, router=router)
        self.result = result


class AgentError(LbautoError):
    """An agent API call failed."""

    def __init__(self, message: str, agent: str | None = None, status: int | None = None) -> None:
        self.agent = agent
        self.status = status
        super().__init__(f"agent {agent}: {message}" if agent else message)


class BgpSpeakerError(LbautoError):
    """The agent's BGP speaker (its FRR daemons) failed to start or to take a change."""


class ConflictError(AgentError):
    """The agent's generation did not match (HTTP 412): someone else changed the VIP."""


class ConfigError(LbautoError):
    """The agent configuration (file, flags or token) is missing or invalid."""


class RequestError(LbautoError):
    """A request the agent refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class TransitionError(LbautoError):
    """A transition step failed; the VIP was returned to its previous consistent state."""

    def __init__(self, vip: str, step: str, device: str, cause: str) -> None:
        self.vip, self.step, self.device, self.cause = vip, step, device, cause
        super().__init__(f"VIP {vip}: step {step} failed on {device}: {cause}")


class LabError(LbautoError):
    """The namespace lab could not be built, used or removed."""


class LockedError(LbautoError):
    """Another apply holds the inventory's lock."""


class AbortedError(LbautoError):
    """The operator declined the plan."""


class JournalError(LbautoError):
    """The journal cannot be written (state directory full, read-only or gone): no step runs
    unless its journal entry is on disk first."""


class BackendError(LbautoError):
    """The etcd backend of ``lbauto.yaml`` refused or failed a request (auth, TLS, bad reply)."""


class BackendUnavailableError(BackendError):
    """No endpoint of the etcd backend answered; raised before any device is read or
    changed (the message names each endpoint and the fix)."""


class EditConflictError(LbautoError):
    """``scale`` found the VIP it changes edited by someone else in vips.yaml meanwhile."""


class PlanFileError(LbautoError):
    """A saved plan file (``lbauto plan --out``) cannot be read, is not a plan file, or was
    written by an unsupported format version."""


class StalePlanError(LbautoError):
    """A saved plan no longer matches the inventory, the live state or lbauto's version;
    ``changes`` names each difference (``lbauto apply PLAN --replan`` plans anew)."""

    def __init__(self, plan_file: str, changes: Iterable[str]) -> None:
        self.changes: list[str] = list(changes)
        lines = [f"{plan_file}: stale plan: {c}" for c in self.changes]
        lines.append(
            f"{plan_file}: stale plan: refusing to apply it (run `lbauto plan --out` again and "
            "review it, or pass --replan to plan anew from the live state)"
        )
        super().__init__("\n".join(lines))


class PlaybookError(LbautoError):
    """Invalid playbook. ``problems`` holds one line per problem (``file:line: task: what``)."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems) if self.problems else "invalid playbook")
