"""Reading and checking playbooks: every error found before anything runs, each with its
file and line, all of them at once."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from lbauto.errors import InventoryError, PlaybookError
from lbauto.play import read_play

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventories" / "example"


@pytest.fixture
def inv(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLE, tmp_path / "inv")
    return tmp_path / "inv"


def write(tmp_path: Path, text: str, name: str = "pb.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def problems(path: Path, inv: Path, **kw: object) -> list[str]:
    with pytest.raises(PlaybookError) as exc:
        read_play(path, inventory=inv, **kw)  # type: ignore[arg-type]
    return exc.value.problems


def test_a_valid_playbook_reads_with_lines_and_rendered_vars(tmp_path: Path, inv: Path) -> None:
    path = write(
        tmp_path,
        """
        name: demo
        vars:
          vip: web
          dips: ["{{ first }}", 198.51.100.22]
        tasks:
          - name: scale
            scale:
              vip: "{{ vip }}"
              dips: "{{ dips }}"
            register: r
          - name: check
            assert:
              that: r.changed
            when: r is defined
        """,
    )
    play = read_play(path, inventory=inv, extra_vars={"first": "198.51.100.21"})
    assert play.name == "demo"
    assert play.vars["dips"] == ["198.51.100.21", "198.51.100.22"]
    assert [(t.index, t.module, t.line, t.module_line) for t in play.tasks] == [
        (1, "scale", 6, 7),
        (2, "assert", 11, 12),
    ]
    assert play.tasks[0].register == "r"
    assert play.tasks[1].when == ("r is defined",)


def test_extra_vars_win_over_play_vars(tmp_path: Path, inv: Path) -> None:
    path = write(
        tmp_path,
        """
        name: x
        vars: {vip: web}
        tasks:
          - name: t
            scale: {vip: "{{ vip }}", add: 198.51.100.40}
        """,
    )
    assert read_play(path, inventory=inv, extra_vars={"vip": "api"}).vars["vip"] == "api"
    # and an extra var naming a VIP that does not exist is caught before the run
    (p,) = problems(path, inv, extra_vars={"vip": "nope"})
    assert p.startswith(f"{path}:5: task 1 't': scale: vip: no VIP named 'nope'")


CASES = [
    (
        "unknown module",
        """
        name: x
        tasks:
          - name: t
            scael: {vip: web}
        """,
        [":4: task 1 't': unknown module 'scael' (known: apply, assert, drain_dip, plan, "],
    ),
    (
        "unknown argument",
        """
        name: x
        tasks:
          - name: t
            scale:
              vip: web
              add: 198.51.100.40
              colour: blue
        """,
        [":7: task 1 't': scale: unknown argument 'colour' (allowed: drain_timeout, transit, "],
    ),
    (
        "missing argument",
        """
        name: x
        tasks:
          - name: t
            drain_dip:
              timeout: 5
        """,
        [":4: task 1 't': drain_dip: argument 'dip' is missing"],
    ),
    (
        "unknown VIP",
        """
        name: x
        tasks:
          - name: t
            assert:
              vip: wbe
              mode: multi
        """,
        [":5: task 1 't': assert: vip: no VIP named 'wbe' in the inventory (known: api, "],
    ),
    (
        "DIP no VIP uses",
        """
        name: x
        tasks:
          - name: t
            drain_dip:
              dip: 198.51.100.99
        """,
        [":5: task 1 't': drain_dip: dip: 198.51.100.99 is not a DIP of any VIP in the inventory"],
    ),
    (
        "not an address",
        """
        name: x
        tasks:
          - name: t
            scale:
              vip: web
              dips: [198.51.100.21, web2]
        """,
        [":6: task 1 't': scale: dips: 'web2' is not an IP address"],
    ),
    (
        "wrong family",
        """
        name: x
        tasks:
          - name: t
            scale: {vip: web, add: "2001:db8:100::40"}
        """,
        [":4: task 1 't': scale: DIP 2001:db8:100::40 is IPv6, VIP web is IPv4"],
    ),
    (
        "bad Jinja",
        """
        name: x
        tasks:
          - name: t
            scale:
              vip: "{{ vip | }}"
              add: 198.51.100.40
        """,
        [":5: task 1 't': bad Jinja: "],
    ),
    (
        "undefined variable",
        """
        name: x
        tasks:
          - name: t
            scale:
              vip: web
              add: "{{ new_dip }}"
        """,
        [":6: task 1 't': undefined variable 'new_dip' (define it in vars:, pass -e new_dip=..."],
    ),
    (
        "register used before it is registered",
        """
        name: x
        tasks:
          - name: first
            assert: {that: later.changed}
          - name: second
            plan: {}
            register: later
        """,
        [":4: task 1 'first': undefined variable 'later'"],
    ),
    (
        "bad when",
        """
        name: x
        tasks:
          - name: t
            plan: {}
            when: "x ==="
        """,
        [":3: task 1 't': bad Jinja: "],
    ),
    (
        "two modules",
        """
        name: x
        tasks:
          - name: t
            plan: {}
            apply: {}
        """,
        [":5: task 1 't': one module per task, found 'plan', 'apply'"],
    ),
    (
        "no module",
        """
        name: x
        tasks:
          - name: t
            register: r
        """,
        [":3: task 1 't': no module: add one of apply, assert, drain_dip, plan, "],
    ),
    (
        "task without a name",
        """
        name: x
        tasks:
          - plan: {}
        """,
        [":3: task 1: key 'name' is missing"],
    ),
    (
        "reserved register",
        """
        name: x
        tasks:
          - name: t
            plan: {}
            register: item
        """,
        [":5: task 1 't': register: 'item' is reserved"],
    ),
    (
        "unknown play key",
        """
        name: x
        hosts: all
        tasks:
          - name: t
            plan: {}
        """,
        [":2: play: unknown key 'hosts' (allowed: name, inventory, vars, tasks)"],
    ),
    (
        "duplicate key",
        """
        name: x
        tasks:
          - name: t
            scale: {vip: web, add: 198.51.100.40}
            scale: {vip: api, add: 198.51.100.41}
        """,
        [":5: key 'scale' given twice (first on line 4)"],
    ),
    (
        "bad YAML",
        """
        name: x
        tasks:
          - name: t
            plan: {vips: [web}
        """,
        [":4: invalid YAML: "],
    ),
    (
        "a wait needs exactly one of seconds and until",
        """
        name: x
        tasks:
          - name: t
            wait: {timeout: 5}
        """,
        [":4: task 1 't': wait: give exactly one of seconds, until"],
    ),
    (
        "a nested condition's unknown key",
        """
        name: x
        tasks:
          - name: t
            wait:
              until: {vip: web, mood: single}
        """,
        [":5: task 1 't': wait: unknown argument 'mood' (allowed: vip, dip, mode, "],
    ),
    (
        "a sandboxed template cannot reach Python",
        """
        name: x
        vars:
          evil: "{{ ''.__class__.__mro__ }}"
        tasks:
          - name: t
            plan: {}
        """,
        [":3: play: var 'evil': not allowed in a playbook: "],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_error_is_reported_with_its_line(
    tmp_path: Path, inv: Path, text: str, expected: list[str]
) -> None:
    path = write(tmp_path, text)
    found = problems(path, inv)
    assert len(found) == len(expected), found
    for got, want in zip(found, expected, strict=True):
        assert got.startswith(f"{path}{want}"), got


def test_every_problem_is_reported_at_once(tmp_path: Path, inv: Path) -> None:
    path = write(
        tmp_path,
        """
        name: x
        tasks:
          - name: a
            scale: {vip: nope, add: 198.51.100.40}
          - name: b
            frobnicate: {}
          - name: c
            drain_dip: {dip: "{{ missing }}"}
          - name: d
            assert: {vip: web, mode: sideways}
        """,
    )
    found = problems(path, inv)
    lines = [p.split(":")[1] for p in found]
    assert lines == ["4", "6", "8", "10"], found
    assert "mode: Input should be 'multi', 'single' or 'empty'" in found[3]


def test_a_literal_loop_is_validated_item_by_item(tmp_path: Path, inv: Path) -> None:
    path = write(
        tmp_path,
        """
        name: x
        tasks:
          - name: t
            scale: {vip: "{{ item }}", add: 198.51.100.40}
            loop: [web, bogus, blog]
        """,
    )
    (p,) = problems(path, inv)
    assert "vip: no VIP named 'bogus'" in p


def test_arguments_from_a_registered_result_get_their_keys_checked_now(
    tmp_path: Path, inv: Path
) -> None:
    path = write(
        tmp_path,
        """
        name: x
        tasks:
          - name: p
            plan: {}
            register: p
          - name: t
            restore_dip: {dip: "{{ p.vips }}", colour: 1}
        """,
    )
    (p,) = problems(path, inv)
    assert p.startswith(f"{path}:7: task 2 't': restore_dip: unknown argument 'colour'"), p


def test_a_dip_added_by_an_earlier_task_may_be_drained_later(tmp_path: Path, inv: Path) -> None:
    path = write(
        tmp_path,
        """
        name: staged
        tasks:
          - name: add
            scale: {vip: web, add: 198.51.100.40}
          - name: drain it again
            drain_dip: {dip: 198.51.100.40}
        """,
    )
    assert len(read_play(path, inventory=inv).tasks) == 2


def test_the_playbooks_inventory_is_relative_to_the_playbook(tmp_path: Path, inv: Path) -> None:
    path = write(tmp_path, "name: x\ninventory: inv\ntasks:\n  - name: t\n    plan: {}\n")
    assert read_play(path).inventory.path.resolve() == inv.resolve()
    missing = write(tmp_path, "name: x\ntasks:\n  - name: t\n    plan: {}\n", "m.yml")
    with pytest.raises(PlaybookError, match=r"m.yml:1: play: no inventory: add `inventory: DIR`"):
        read_play(missing)
    bad = write(
        tmp_path, "name: x\ninventory: nowhere\ntasks:\n  - name: t\n    plan: {}\n", "b.yml"
    )
    with pytest.raises(InventoryError):
        read_play(bad)


def test_one_play_per_file_and_the_ansible_list_form(tmp_path: Path, inv: Path) -> None:
    one = write(tmp_path, "- name: x\n  tasks:\n    - name: t\n      plan: {}\n")
    assert read_play(one, inventory=inv).name == "x"
    two = write(tmp_path, "- name: x\n  tasks: []\n- name: y\n  tasks: []\n", "two.yml")
    assert problems(two, inv) == [f"{two}:1: one play per playbook file, found 2"]


def test_the_example_playbooks_are_valid_against_the_example_inventory() -> None:
    for path in sorted((ROOT / "playbooks").glob("*.yml")):
        play = read_play(path, inventory=EXAMPLE)
        assert play.tasks, path
        assert path.read_text().startswith("# "), f"{path}: say what it is for in a comment"
