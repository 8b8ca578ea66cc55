"""Jinja over a playbook's values, always in Jinja's immutable sandbox.

A string that is exactly one ``{{ expression }}`` keeps the expression's type (a list stays a
list, a number a number), as Ansible users expect; any other string with ``{{``/``{%`` renders to
text. Undefined names are errors, never empty strings. ``when:`` conditions and ``loop:``
expressions are bare expressions. Nothing rendered here can call into Python beyond the
sandbox's safe attributes. Problems raise :class:`~lbauto.errors.PlaybookError` with one line
(without a location: the caller knows the file and line).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from lbauto.errors import PlaybookError

_ENV = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
)
_WHOLE = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}).)*)\}\}\s*$", re.DOTALL)


def is_template(value: object) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _message(exc: jinja2.TemplateError) -> str:
    if isinstance(exc, jinja2.UndefinedError):
        return f"undefined: {exc.message}"
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"bad Jinja: {exc.message}"
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"not allowed in a playbook: {exc}"
    return f"Jinja error: {exc}"


def names_in(text: str, expression: bool = False) -> set[str]:
    """The variable names a template (or bare expression) reads; PlaybookError if bad."""
    source = "{{ " + text + " }}" if expression else text
    try:
        return set(meta.find_undeclared_variables(_ENV.parse(source)))
    except jinja2.TemplateSyntaxError as exc:
        raise PlaybookError([_message(exc)]) from None


def render(value: Any, variables: Mapping[str, Any]) -> Any:
    """``value`` with every template string in it rendered (lists and mappings recursively)."""
    if isinstance(value, str):
        return render_text(value, variables) if is_template(value) else value
    if isinstance(value, list):
        return [render(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: render(v, variables) for k, v in value.items()}
    return value


def render_text(text: str, variables: Mapping[str, Any]) -> Any:
    whole = _WHOLE.match(text)
    try:
        if whole and "{{" not in whole["expr"] and "{%" not in whole["expr"]:
            return evaluate(whole["expr"], variables)
        return _template(text).render(dict(variables))
    except jinja2.TemplateError as exc:
        raise PlaybookError([_message(exc)]) from None


@functools.lru_cache(maxsize=4096)
def _expression(source: str) -> Callable[..., Any]:
    # Compiling is most of the cost (a loop renders the same text once per item, and the
    # check before the run renders it again): compile each distinct text once.
    return _ENV.compile_expression(source, undefined_to_none=False)


@functools.lru_cache(maxsize=4096)
def _template(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def evaluate(expression: str, variables: Mapping[str, Any]) -> Any:
    """A bare expression's value (``when:``, ``loop:``, ``assert: that:``)."""
    try:
        compiled = _expression(expression.strip())
        result = compiled(**variables)
    except jinja2.TemplateError as exc:
        raise PlaybookError([_message(exc)]) from None
    if isinstance(result, jinja2.Undefined):
        try:
            str(result)
        except jinja2.UndefinedError as exc:
            raise PlaybookError([_message(exc)]) from None
    return result


def names_in_value(value: Any) -> set[str]:
    """Every variable name the templates inside ``value`` read."""
    if isinstance(value, str):
        return names_in(value) if is_template(value) else set()
    if isinstance(value, list):
        return set().union(*(names_in_value(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(names_in_value(v) for v in value.values())) if value else set()
    return set()


def loop_names(text: str) -> set[str]:
    """Names a ``loop:`` string reads: a template (``"{{ x }}"``) or a bare expression."""
    return names_in(text) if is_template(text) else names_in(text, expression=True)


def loop_value(text: str, variables: Mapping[str, Any]) -> Any:
    return render_text(text, variables) if is_template(text) else evaluate(text, variables)
