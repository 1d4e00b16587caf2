"""A filter language over queryable metadata, in the style of AIP-160:
`weather = "rain" AND (speed > 10 OR night = true) AND NOT tag = "x"`.
Comparisons: = != < <= > >=; `:` tests membership in a list field (`tags : "urban"`); literals are strings, numbers,
true, false and null. Parse errors name the position."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from shoal.kit.errors import FieldViolation, InvalidArgument

Predicate = Callable[[Mapping[str, Any]], bool]
_TOKEN: Final = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(?P<op><=|>=|!=|=|<|>|:)'
    r"|(?P<lp>\()|(?P<rp>\))|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass
class _Token:
    kind: str
    text: str
    pos: int


def _tokens(text: str) -> list[_Token]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise _error(text, pos, "unexpected character")
        kind = m.lastgroup or ""
        out.append(_Token(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return out


def _error(text: str, pos: int, problem: str) -> InvalidArgument:
    return InvalidArgument.of(
        [FieldViolation("filter", f"{problem} at position {pos}: {text!r}")], reason="INVALID_FILTER"
    )


def parse(text: str) -> Predicate:
    """Compile a filter; an empty filter matches everything."""
    tokens = _tokens(text)
    if not tokens:
        return lambda _: True
    at = 0

    def peek() -> _Token | None:
        return tokens[at] if at < len(tokens) else None

    def take() -> _Token:
        nonlocal at
        if at >= len(tokens):
            raise _error(text, len(text), "unexpected end")
        at += 1
        return tokens[at - 1]

    def expr() -> Predicate:
        left = term()
        while (t := peek()) is not None and t.kind == "word" and t.text.upper() == "OR":
            take()
            right = term()
            left = _either(left, right)
        return left

    def term() -> Predicate:
        left = factor()
        while (t := peek()) is not None and t.kind == "word" and t.text.upper() == "AND":
            take()
            right = factor()
            left = _both(left, right)
        return left

    def factor() -> Predicate:
        t = take()
        if t.kind == "word" and t.text.upper() == "NOT":
            inner = factor()
            return lambda m: not inner(m)
        if t.kind == "lp":
            inner = expr()
            if take().kind != "rp":
                raise _error(text, t.pos, "unclosed parenthesis")
            return inner
        if t.kind != "word":
            raise _error(text, t.pos, "expected a field name")
        op = take()
        if op.kind != "op":
            raise _error(text, op.pos, "expected a comparison")
        value = _literal(take(), text)
        return _compare(t.text, op.text, value)

    predicate = expr()
    if at != len(tokens):
        raise _error(text, tokens[at].pos, "unexpected token")
    return predicate


def _either(a: Predicate, b: Predicate) -> Predicate:
    return lambda m: a(m) or b(m)


def _both(a: Predicate, b: Predicate) -> Predicate:
    return lambda m: a(m) and b(m)


def _literal(t: _Token, text: str) -> Any:
    if t.kind == "str":
        return bytes(t.text[1:-1], "utf-8").decode("unicode_escape")
    if t.kind == "num":
        return float(t.text) if any(c in t.text for c in ".eE") else int(t.text)
    if t.kind == "word" and t.text.lower() in {"true", "false", "null"}:
        return {"true": True, "false": False, "null": None}[t.text.lower()]
    raise _error(text, t.pos, "expected a value")


def _compare(field: str, op: str, value: Any) -> Predicate:
    def test(m: Mapping[str, Any]) -> bool:
        actual = m.get(field)
        if op == ":":
            return isinstance(actual, list) and value in actual
        if op == "=":
            return bool(actual == value)
        if op == "!=":
            return bool(actual != value)
        if actual is None or value is None or isinstance(actual, list):
            return False
        try:
            return bool({"<": actual < value, "<=": actual <= value, ">": actual > value, ">=": actual >= value}[op])
        except TypeError:
            return False

    return test
