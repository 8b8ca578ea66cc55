"""The NAPALM driver methods lbauto uses: one Protocol for every router driver.

NAPALM's drivers (``eos``, ``ios``, ``nxos``, ``junos``, its ``mock``) and lbauto's own
``napalm_frr`` all satisfy it structurally; tests' fakes do too.
"""

from __future__ import annotations

from typing import Any, Protocol


class NapalmDriver(Protocol):
    """The subset of :class:`napalm.base.NetworkDriver` that lbauto calls."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def get_config(
        self,
        retrieve: str = "all",
        full: bool = False,
        sanitized: bool = False,
        format: str = "text",
    ) -> dict[str, str]: ...

    def get_route_to(
        self, destination: str = "", protocol: str = "", longer: bool = False
    ) -> dict[str, list[dict[str, Any]]]: ...

    def cli(self, commands: list[str], encoding: str = "text") -> dict[str, Any]: ...

    def get_bgp_neighbors(self) -> dict[str, dict[str, Any]]: ...

    def load_merge_candidate(
        self, filename: str | None = None, config: str | None = None
    ) -> None: ...

    def compare_config(self) -> str: ...

    def discard_config(self) -> None: ...

    def commit_config(self, message: str = "", revert_in: int | None = None) -> None: ...

    def has_pending_commit(self) -> bool: ...

    def confirm_commit(self) -> None: ...

    def rollback(self) -> None: ...
