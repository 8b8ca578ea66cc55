"""The push pipeline over stock NAPALM drivers (EOS, IOS, NX-OS, Junos).

These platforms cannot run here: NAPALM's ``mock`` driver replays recorded responses from
``tests/unit/mock_napalm/<platform>/<scenario>/`` and a spy records the call sequence the
pipeline makes, which is what differs per platform (commit-confirm or not, revert_in units).
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Any

import pytest

from lbauto.core.model import Platform, Router, StaticRoute
from lbauto.errors import PushAbortedError, PushError
from lbauto.push.drivers import open_driver, revert_seconds
from lbauto.push.pipeline import RouterPush, Status, push
from lbauto.push.verify import Expectation

RECORDED = Path(__file__).parent / "mock_napalm"
VIP = ipaddress.ip_network("192.0.2.10/32")
BYPASS = StaticRoute(VIP, ipaddress.ip_address("198.51.100.21"), 1, 4242)
LINES = "ip route 192.0.2.10/32 198.51.100.21 tag 4242\n"
SECRET = "Sup3r-S3cret!"


class Spy:
    """Records the NAPALM calls made on a driver, then forwards them."""

    def __init__(self, driver: Any, calls: list[tuple[str, str, dict[str, Any]]]) -> None:
        self._driver, self._calls = driver, calls

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._driver, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.append((self._driver.hostname, name, kwargs))
            return target(*args, **kwargs)

        return call


def router(name: str, platform: Platform, scenario: str = "ok", **extra: Any) -> Router:
    return Router(
        name=name,
        hostname=name,
        platform=platform,
        username="netops",
        password_env="LBP_TEST_PASSWORD",
        optional_args={
            "napalm_driver": "mock",
            "path": str(RECORDED / platform / scenario),
            **extra,
        },
    )


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LBP_TEST_PASSWORD", SECRET)


def run(routers: list[Router], **kwargs: Any) -> tuple[Any, list[tuple[str, str, dict[str, Any]]]]:
    calls: list[tuple[str, str, dict[str, Any]]] = []
    jobs = [RouterPush(r, LINES, Expectation(present=(BYPASS,))) for r in routers]
    result = push(jobs, opener=lambda r: Spy(open_driver(r), calls), **kwargs)
    return result, calls


def names(calls: list[tuple[str, str, dict[str, Any]]], host: str) -> list[str]:
    return [m for h, m, _ in calls if h == host]


def kwargs_of(
    calls: list[tuple[str, str, dict[str, Any]]], host: str, method: str
) -> dict[str, Any]:
    return next(k for h, m, k in calls if h == host and m == method)


@pytest.mark.parametrize(
    ("platform", "extra", "revert_in"),
    [
        ("eos", {}, 90),  # config session `commit timer 00:01:30`
        ("junos", {}, 120),  # commit confirmed counts whole minutes: 90 s -> 2 min
        ("ios", {"archive": True}, 120),  # configure terminal revert timer, minutes
    ],
)
def test_commit_confirm_platforms(
    platform: Platform, extra: dict[str, Any], revert_in: int
) -> None:
    result, calls = run([router("r1", platform, **extra)], revert_in=90)
    assert names(calls, "r1") == [
        "load_merge_candidate",
        "compare_config",
        "commit_config",
        "get_route_to",
        "confirm_commit",
        "close",
    ]
    assert kwargs_of(calls, "r1", "load_merge_candidate") == {"config": LINES}
    assert kwargs_of(calls, "r1", "commit_config") == {"revert_in": revert_in}
    assert kwargs_of(calls, "r1", "get_route_to") == {"destination": "192.0.2.10/32"}
    (res,) = result.results
    assert res.status is Status.CHANGED
    assert res.diff_lines >= 1


@pytest.mark.parametrize(("platform", "extra"), [("nxos", {}), ("ios", {})])
def test_platforms_without_commit_confirm_commit_plainly(
    platform: Platform, extra: dict[str, Any]
) -> None:
    """NX-OS has no commit-confirm; IOS has it only with `archive` (not declared here)."""
    result, calls = run([router("r1", platform, **extra)], revert_in=90)
    assert names(calls, "r1") == [
        "load_merge_candidate",
        "compare_config",
        "commit_config",
        "get_route_to",
        "close",
    ]
    assert kwargs_of(calls, "r1", "commit_config") == {"revert_in": None}
    assert result.results[0].status is Status.CHANGED


@pytest.mark.parametrize("platform", ["eos", "junos", "nxos"])
def test_without_compare_the_commit_still_confirms_after_verification(platform: Platform) -> None:
    """The executor's pushes (compare=False) skip only the device diff: commit-confirm where
    the platform has it, verification before any confirm, and the same result status."""
    result, calls = run([router("r1", platform)], revert_in=90, compare=False)
    expected = ["load_merge_candidate", "commit_config", "get_route_to"]
    expected += ["close"] if platform == "nxos" else ["confirm_commit", "close"]
    assert names(calls, "r1") == expected
    (res,) = result.results
    assert res.status is Status.CHANGED and res.diff == ""


def test_dry_run_diffs_even_without_compare() -> None:
    result, calls = run([router("r1", "eos")], dry_run=True, compare=False)
    assert "compare_config" in names(calls, "r1") and "commit_config" not in names(calls, "r1")
    assert "198.51.100.21" in result.results[0].diff


def test_revert_seconds_rounding_and_limits() -> None:
    assert revert_seconds(router("r", "junos"), 61) == 120
    assert revert_seconds(router("r", "ios", archive=True), 9000) == 7200
    assert revert_seconds(router("r", "eos"), 7) == 7
    assert revert_seconds(router("r", "frr"), None) is None


@pytest.mark.parametrize("platform", ["eos", "ios", "nxos", "junos"])
def test_dry_run_diffs_and_discards(platform: Platform) -> None:
    result, calls = run([router("r1", platform)], dry_run=True)
    assert names(calls, "r1") == [
        "load_merge_candidate",
        "compare_config",
        "discard_config",
        "close",
    ]
    (res,) = result.results
    assert res.status is Status.CHANGED
    assert "198.51.100.21" in res.diff
    assert result.dry_run


def test_one_failing_router_rolls_back_the_others() -> None:
    routers = [
        router("eos1", "eos"),
        router("nxos1", "nxos"),
        router("junos1", "junos", scenario="wrong_next_hop"),
    ]
    with pytest.raises(PushAbortedError) as info:
        run(routers, revert_in=60, verify_timeout=0)
    err = info.value
    assert err.router == "junos1"
    assert "verification failed" in str(err)
    assert "198.51.100.21" in str(err)
    statuses = {r.router: r.status for r in err.result.results}
    assert statuses == {
        "eos1": Status.ROLLED_BACK,
        "nxos1": Status.ROLLED_BACK,
        "junos1": Status.FAILED,
    }


def test_rollback_calls_per_router() -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = []
    routers = [router("eos1", "eos"), router("junos1", "junos", "wrong_next_hop")]
    jobs = [RouterPush(r, LINES, Expectation(present=(BYPASS,))) for r in routers]
    with pytest.raises(PushAbortedError):
        push(jobs, opener=lambda r: Spy(open_driver(r), calls), verify_timeout=0)
    # nobody confirms; both roll back (EOS aborts its pending session, Junos `rollback 1`)
    assert "confirm_commit" not in names(calls, "eos1") + names(calls, "junos1")
    assert names(calls, "eos1")[-2:] == ["rollback", "close"]
    assert names(calls, "junos1")[-2:] == ["rollback", "close"]


def test_password_never_appears_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PushAbortedError) as info:
        run([router("eos1", "eos", scenario="commit_error")])
    text = str(info.value) + " ".join(r.error or "" for r in info.value.result.results)
    assert "authorization failed" in text
    assert SECRET not in text
    assert "*****" in text
    assert SECRET not in caplog.text


def test_missing_password_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LBP_TEST_PASSWORD")
    with pytest.raises(PushError, match="LBP_TEST_PASSWORD"):
        open_driver(router("eos1", "eos"))


def test_same_router_twice_is_refused() -> None:
    r = router("eos1", "eos")
    with pytest.raises(PushError, match="twice"):
        push([RouterPush(r, LINES), RouterPush(r, LINES)])


def test_empty_change_is_unchanged_without_touching_config() -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = []
    result = push(
        [RouterPush(router("eos1", "eos"), "")],
        opener=lambda r: Spy(open_driver(r), calls),
    )
    assert result.results[0].status is Status.UNCHANGED
    assert names(calls, "eos1") == ["close"]


def test_connection_failure_names_router_without_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    frr = Router(
        name="edge1",
        hostname="127.0.0.1",
        platform="frr",
        port=1,  # nothing listens: connection refused, for real
        username="netops",
        password_env="LBP_TEST_PASSWORD",
        optional_args={"pathspace": "x"},
    )
    with pytest.raises(PushError) as info:
        open_driver(frr)
    text = str(info.value)
    assert text.startswith("edge1: cannot connect to 127.0.0.1")
    assert "ConnectTimeoutError" in text or "ConnectionException" in text
    assert SECRET not in text
    # The vendor error stays chained for a traceback (and -v); it carries no secret either.
    assert info.value.__cause__ is not None
    assert SECRET not in str(info.value.__cause__)
    assert SECRET not in caplog.text
