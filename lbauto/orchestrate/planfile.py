"""Saved plans: ``lbauto plan --out PLAN`` writes one, ``lbauto apply PLAN`` applies exactly it.

A plan file is one JSON document (format ``lbauto-plan``, version :data:`PLAN_FILE_VERSION`)
holding the plan, what it was computed from and how:

- ``inventory``: the digest of every inventory file (and template override), per file, so a
  stale plan can name the file that changed;
- ``state``: the observed state the plan was computed from, as content and as a digest, and its
  source (``live``, a ``file`` or ``empty``);
- ``options``: transit and drain settings and the ``--limit`` patterns (with the VIP addresses
  they selected);
- ``lbauto_version``, and the plan itself (the ``lbauto plan -o json`` document);
- ``backend``: the lock and journal it was computed under (``type`` local or etcd, etcd's
  ``endpoints`` and ``prefix``, the ``lock`` file or key); applying it under another backend
  is refused, since another lock does not serialise it with the runs that saw its state.

No secrets: inventory files are recorded by digest only, observed state holds addresses,
modes and lbauto-owned router objects, and the inventory refuses literal passwords anyway.

``apply PLAN`` re-observes the devices inside the apply lock, and refuses (:class:`StalePlanError`,
naming each difference) when the inventory, the observed state, lbauto's version or the plan
recomputed from them differ from the file. The planner is pure, so with equal inputs the plan it
computes again is equal to the saved one, and that equality is checked before anything runs:
what executes is exactly the reviewed plan, through the one executor
(:func:`lbauto.orchestrate.apply.run_apply`).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lbauto import __version__
from lbauto.core.model import Inventory, ObservedState
from lbauto.core.plan import PlanOptions
from lbauto.errors import PlanFileError, StalePlanError
from lbauto.inventory.statefile import state_from_json, state_to_json
from lbauto.orchestrate.backends import BackendInfo, backend_for
from lbauto.orchestrate.plandoc import plan_document, same_plan

if TYPE_CHECKING:
    from lbauto.orchestrate.apply import ApplyOutcome, Devices
    from lbauto.orchestrate.executor import EventHook

log = logging.getLogger("lbauto.planfile")

PLAN_FORMAT = "lbauto-plan"
#: Version of the plan file format (bumped on any incompatible change).
PLAN_FILE_VERSION = 1
#: Suffix of plan files; such files inside an inventory are not part of its digest.
PLAN_SUFFIX = ".lbauto"

StateSource = Literal["live", "file", "empty"]


# ------------------------------------------------------------------------- the plan document


# The document itself (version 2: shared router sets and change lists) is built by
# lbauto.orchestrate.plandoc.plan_document.


# ------------------------------------------------------------------------------- the model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InventoryRecord(_Strict):
    path: str
    digest: str
    #: relative path -> "sha256:<hex>" of every file the digest covers.
    files: dict[str, str]


class StateRecord(_Strict):
    source: StateSource
    file: str | None = None
    digest: str
    content: dict[str, Any]


class OptionsRecord(_Strict):
    transit_seconds: float = Field(ge=0)
    drain_timeout: float = Field(ge=0)
    limit: list[str] = Field(default_factory=list)
    #: VIP addresses the limit selected; None when no limit was given.
    only: list[str] | None = None

    def plan_options(self) -> PlanOptions:
        return PlanOptions(transit_seconds=self.transit_seconds, drain_timeout=self.drain_timeout)


class BackendRecord(_Strict):
    type: Literal["local", "etcd"]
    endpoints: list[str] = Field(default_factory=list)
    prefix: str | None = None
    lock: str

    def info(self) -> BackendInfo:
        return BackendInfo(self.type, self.lock, tuple(self.endpoints), self.prefix)


class PlanFile(_Strict):
    format: Literal["lbauto-plan"] = "lbauto-plan"
    version: Literal[1] = 1
    lbauto_version: str
    created: str
    inventory: InventoryRecord
    state: StateRecord
    options: OptionsRecord
    plan: dict[str, Any]
    #: None: written before plans recorded it (they were all computed under local files).
    backend: BackendRecord | None = None

    def observed(self, source: str) -> ObservedState:
        return state_from_json(self.state.content, f"{source}: state.content")


# ----------------------------------------------------------------------------------- digests


def _state_dir(inv: Inventory) -> Path:
    # lbauto.orchestrate.apply brings the whole apply path: `plan --out` needs none of it.
    from lbauto.orchestrate.apply import state_dir

    return state_dir(inv)


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _files(root: Path, skip: Path | None) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue  # the state dir (.lbauto), editor and VCS files
        if skip is not None and path.is_relative_to(skip):
            continue
        if path.is_file() and path.suffix != PLAN_SUFFIX:
            yield path


def inventory_record(inv: Inventory, given: Path | None = None) -> InventoryRecord:
    """Digests of every file of the inventory (and of an outside template directory).

    Comments count: a reviewer reviewed the files, so any byte changed makes a plan stale."""
    root = inv.path
    files: dict[str, str] = {}
    for path in _files(root, _state_dir(inv)):
        files[path.relative_to(root).as_posix()] = _sha256(path.read_bytes())
    tdir = inv.template_dir
    if tdir is not None and tdir.is_dir() and not tdir.resolve().is_relative_to(root.resolve()):
        for path in _files(tdir, None):
            files[f"template_dir:{path.relative_to(tdir).as_posix()}"] = _sha256(path.read_bytes())
    whole = _sha256(json.dumps(files, sort_keys=True).encode())
    return InventoryRecord(path=str(given or root), digest=whole, files=files)


def stable_state(state: ObservedState) -> dict[str, Any]:
    """The canonical state without what changes by itself as time passes (seconds left on
    a transit pin or a drain), so that only real changes make a plan stale."""
    doc = state_to_json(state)
    for agent in doc["agents"].values():
        for vip in agent["vips"]:
            if "transit" in vip:
                vip["transit"] = {"dip": vip["transit"]["dip"], "seconds": 0}
            if "drain" in vip:
                vip["drain"] = {"dips": vip["drain"]["dips"], "timeout": 0}
    return doc


def state_digest(state: ObservedState) -> str:
    text = json.dumps(stable_state(state), sort_keys=True, separators=(",", ":"))
    return _sha256(text.encode())


# ------------------------------------------------------------------------------ read, write


def build_plan_file(
    *,
    plan_doc: Mapping[str, Any],
    inv: Inventory,
    inventory_given: Path | None,
    observed: ObservedState,
    source: StateSource,
    state_file: Path | None,
    options: PlanOptions,
    limit: Sequence[str],
    only: Sequence[str] | None,
) -> PlanFile:
    return PlanFile(
        lbauto_version=__version__,
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        inventory=inventory_record(inv, inventory_given),
        state=StateRecord(
            source=source,
            file=str(state_file) if state_file else None,
            digest=state_digest(observed),
            content=state_to_json(observed),
        ),
        options=OptionsRecord(
            transit_seconds=options.transit_seconds,
            drain_timeout=options.drain_timeout,
            limit=list(limit),
            only=list(only) if only is not None else None,
        ),
        plan=dict(plan_doc),
        backend=BackendRecord.model_validate(backend_for(inv, _state_dir(inv)).info().to_json()),
    )


def write_plan_file(path: Path, pf: PlanFile) -> None:
    """Write atomically (a reader never sees half a plan); readable by the CI job's user."""
    # The plan document is plain JSON already: dumping it through pydantic's Any serializer
    # took seconds for a big plan. Compact, since `lbauto show` is the way to read it.
    data = pf.model_dump(mode="json", exclude={"plan"})
    data["plan"] = pf.plan
    text = json.dumps(data, separators=(",", ":")) + "\n"
    parent = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=parent)
    except OSError as exc:
        raise PlanFileError(f"{path}: cannot write the plan file: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("plan written to %s (%d bytes)", path, len(text))


_REWRITE = "write it again with `lbauto plan --out FILE`"


def load_plan_file(path: Path) -> PlanFile:
    """Read and validate a plan file; every error reads ``file: problem (fix)``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PlanFileError(
            f"{path}: no such plan file (create one with `lbauto plan --out {path}`)"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanFileError(f"{path}: cannot read the plan file: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanFileError(
            f"{path}:{exc.lineno}:{exc.colno}: not a plan file: invalid JSON: {exc.msg} "
            f"({_REWRITE})"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        raise PlanFileError(
            f'{path}: not an lbauto plan file: no "format": "{PLAN_FORMAT}" ({_REWRITE})'
        )
    version = data.get("version")
    if isinstance(version, int) and version > PLAN_FILE_VERSION:
        raise PlanFileError(
            f"{path}: plan file format version {version} is newer than this lbauto "
            f"{__version__} reads ({PLAN_FILE_VERSION}) (upgrade lbauto, or {_REWRITE})"
        )
    plan = data.get("plan")
    try:
        # The plan document is checked for its shape only (an object): validating a big plan
        # item by item as `Any` cost seconds and says nothing the stale check does not.
        pf = PlanFile.model_validate({**data, "plan": {}})
        if not isinstance(plan, dict):
            PlanFile.model_validate(data)  # raises, naming the plan field
        pf = pf.model_copy(update={"plan": plan})
    except ValidationError as exc:
        problems = [
            f"{path}: {'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']} ({_REWRITE})"
            for e in exc.errors()
        ]
        raise PlanFileError("\n".join(problems)) from None
    pf.observed(str(path))  # the recorded state must parse like any state file
    return pf


# -------------------------------------------------------------------------------- staleness


def inventory_changes(pf: PlanFile, inv: Inventory) -> list[str]:
    """What differs between the plan's inventory and ``inv`` (files, lbauto's version)."""
    now = inventory_record(inv).files
    then = pf.inventory.files
    out = [
        f"inventory file {f} changed" for f in sorted(then.keys() & now.keys()) if then[f] != now[f]
    ]
    out += [f"inventory file {f} was added" for f in sorted(now.keys() - then.keys())]
    out += [f"inventory file {f} was removed" for f in sorted(then.keys() - now.keys())]
    if pf.lbauto_version != __version__:
        out.append(f"made by lbauto {pf.lbauto_version}, this is lbauto {__version__}")
    then_b = pf.backend.info() if pf.backend else BackendInfo("local", "apply.lock")
    now_b = backend_for(inv, _state_dir(inv)).info()
    if not then_b.same_store(now_b):
        out.append(
            f"computed under the lock and journal of {then_b.text()} ({then_b.lock}), the "
            f"inventory now uses {now_b.text()} ({now_b.lock})"
        )
    return out


def _vip_text(v: Mapping[str, Any]) -> str:
    dips = ", ".join(v["dips"]) or "no DIPs"
    track = "tracking" if v["flow_tracking"] else "no tracking"
    gen = f", generation {v['generation']}" if "generation" in v else ""
    return f"{v['mode']} [{dips}], {track}{gen}"


def _object_text(o: Mapping[str, Any]) -> str:
    if "distance" in o:
        return f"route {o['prefix']} via {o['next_hop']} distance {o['distance']} tag {o['tag']}"
    if "seq" in o:
        return f"pbr rule {o['seq']} {o['prefix']} via {o['next_hop']}"
    return f"pbr binding {o['interface']} (IPv{o['version']})"


def state_changes(then: ObservedState, now: ObservedState) -> list[str]:
    """One line per agent VIP or router object that differs (ignoring ticking timers)."""
    a, b = stable_state(then), stable_state(now)
    out: list[str] = []
    for agent in sorted(a["agents"].keys() | b["agents"].keys()):
        va = {v["address"]: v for v in a["agents"].get(agent, {}).get("vips", [])}
        vb = {v["address"]: v for v in b["agents"].get(agent, {}).get("vips", [])}
        for addr in sorted(va.keys() | vb.keys()):
            if addr not in vb:
                out.append(f"agent {agent}: VIP {addr} is gone (was {_vip_text(va[addr])})")
            elif addr not in va:
                out.append(f"agent {agent}: VIP {addr} appeared ({_vip_text(vb[addr])})")
            elif va[addr] != vb[addr]:
                out.append(
                    f"agent {agent}: VIP {addr} changed: {_vip_text(va[addr])} -> "
                    f"{_vip_text(vb[addr])}"
                )
    for router in sorted(a["routers"].keys() | b["routers"].keys()):
        empty: dict[str, list[Any]] = {"routes": [], "pbr": [], "bindings": []}
        ra, rb = a["routers"].get(router, empty), b["routers"].get(router, empty)
        for kind in ("routes", "pbr", "bindings"):
            sa = {json.dumps(o, sort_keys=True): o for o in ra.get(kind, [])}
            sb = {json.dumps(o, sort_keys=True): o for o in rb.get(kind, [])}
            for key in sorted(sa.keys() - sb.keys()):
                out.append(f"router {router}: {_object_text(sa[key])} is gone")
            for key in sorted(sb.keys() - sa.keys()):
                out.append(f"router {router}: {_object_text(sb[key])} appeared")
    return out


def stale_reasons(pf: PlanFile, source: str, inv: Inventory, outcome: ApplyOutcome) -> list[str]:
    """Why ``pf`` is not the plan to run now (empty: it is exactly the plan)."""
    out = inventory_changes(pf, inv)
    then = pf.observed(source)
    if state_digest(outcome.observed) != pf.state.digest:
        out += state_changes(then, outcome.observed) or ["the observed state changed"]
    now_doc = plan_document(outcome.plan, inv, outcome.observed)
    if not out and not same_plan(now_doc, pf.plan):
        out.append("the plan computed now differs from the saved one")
    return out


# ------------------------------------------------------------------------------------- apply


@dataclass
class SavedApply:
    outcome: ApplyOutcome
    #: Differences found but overridden by ``replan`` (empty when the plan was current).
    replanned: list[str] = field(default_factory=list)


def apply_saved(
    pf: PlanFile,
    source: Path,
    inv: Inventory,
    devices: Devices,
    *,
    dry_run: bool,
    confirm: Callable[[ApplyOutcome], bool],
    replan: bool = False,
    on_event: EventHook | None = None,
) -> SavedApply:
    """Apply the saved plan ``pf`` (read from ``source``) through :func:`run_apply`.

    The check runs on the outcome run_apply observed and planned inside its lock, before its
    ``confirm`` lets the executor start, so nothing can change between check and execution
    except what the agents' If-Match generations refuse anyway."""
    name = str(source)
    early = inventory_changes(pf, inv)
    if early and not replan:
        raise StalePlanError(name, early)  # before any device is contacted
    found: list[str] = []

    def check(outcome: ApplyOutcome) -> None:
        reasons = stale_reasons(pf, name, inv, outcome)
        if reasons and not replan:
            raise StalePlanError(name, reasons)
        found[:] = reasons

    def checked_confirm(outcome: ApplyOutcome) -> bool:
        check(outcome)
        return confirm(outcome)

    from lbauto.orchestrate.apply import run_apply

    only = pf.options.only
    outcome = run_apply(
        inv,
        devices,
        options=pf.options.plan_options(),
        dry_run=dry_run,
        confirm=checked_confirm,
        only=only,
        on_event=on_event,
    )
    if outcome.executed is None:
        # Dry run, or nothing to do now: a plan that had work is stale when none is left.
        check(outcome)
    if found:
        log.warning("plan %s was stale, planned anew (--replan): %s", name, "; ".join(found))
    return SavedApply(outcome, found)
