"""Templates from an inventory are data: they render in Jinja's sandbox (issue 11, item 6)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from lbauto.core.model import Method, Router, StaticRoute
from lbauto.errors import RenderError
from lbauto.platforms.render import render_config

ROUTE = StaticRoute(
    ipaddress.ip_network("192.0.2.10/32"), ipaddress.ip_address("198.51.100.1"), 1, 4242
)

# The classic server-side template injection: reach os through a global's function globals.
ESCAPES = [
    "{{ cycler.__init__.__globals__.os.system('touch %(marker)s') }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ lipsum.__globals__['os'].popen('touch %(marker)s').read() }}",
]


@pytest.mark.parametrize("body", ESCAPES)
def test_an_override_template_cannot_run_code(tmp_path: Path, body: str) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "frr").mkdir()
    (tmp_path / "frr" / "config.j2").write_text(body % {"marker": marker} + "\n")
    router = Router("r1", "192.0.2.254", "frr", Method.STATIC)
    with pytest.raises(RenderError, match="unsafe"):
        render_config(router, (ROUTE,), template_dir=tmp_path)
    assert not marker.exists()


def test_routers_are_hashable() -> None:
    router = Router("r1", "192.0.2.254", "frr", optional_args={"key_file": "/k"})
    assert router in {router}
    assert router != Router("r1", "192.0.2.254", "frr", optional_args={"key_file": "/other"})
