"""Parse a FHIR search query string into an expression tree and result parameters.

``parse_search`` is the one entry point: it validates every parameter against the
registry, builds the ``Expr`` tree (``server.search.expr``), and reports parameters it
does not apply as warnings (or a 400 with ``strict``). Malformed values are always a 400
naming the parameter.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

from server.errors import FhirError, Issue
from server.instants import restore_plus
from server.search.expr import (
    And,
    Chain,
    Composite,
    CompositeValue,
    Dates,
    Expr,
    Has,
    Ids,
    Leaf,
    Missing,
    Not,
    Numbers,
    Or,
    Prefix,
    Quantities,
    Range,
    Reference,
    RefValue,
    String,
    Token,
    TokenValue,
    Uri,
)
from server.search.extract import text_params
from server.search.node_values import split_reference
from server.search.registry import SearchParam, common_params, registry
from server.search.values import (
    MAX_INSTANT,
    MIN_INSTANT,
    BadValue,
    date_range,
    normalise_string,
    parse_number,
)
from server.spec.resources import is_resource_type
from server.storage.port import IncludeSpec, SortKey

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
SUMMARY_MODES = ("true", "false", "text", "data", "count")
TOTAL_MODES = ("none", "estimate", "accurate")
# Accepted and applied elsewhere (format negotiation, paging): never warned about.
TRANSPARENT = ("_format", "_pretty", "_cursor")
UNSUPPORTED_RESULT = ("_contained", "_containedType", "_text", "_content", "_query", "_list")
MAX_CHAIN_DEPTH = 2
# Caps on the size of one search, so that it is refused (400) before it is compiled: a
# SQLite expression deeper than 1000 terms is an error of the store (it answered 503),
# and every term costs an index lookup on either backend.
MAX_PARAMETERS = 100
MAX_VALUES_PER_PARAMETER = 100
MAX_VALUES = 500
INF = float("inf")


@dataclass(frozen=True, slots=True)
class Include:
    spec: IncludeSpec
    iterate: bool = False


@dataclass(slots=True)
class ParsedSearch:
    types: tuple[str, ...]
    where: Expr | None = None
    sort: tuple[SortKey, ...] = ()
    count: int = 20
    summary: str | None = None
    elements: tuple[str, ...] = ()
    total: str | None = None
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    applied: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    cursor: str | None = None


def bad(name: str, message: str) -> FhirError:
    return FhirError.of(400, "invalid", f"Search parameter {name!r}: {message}", (name,))


def split_values(value: str) -> list[str]:
    """Split on unescaped commas; ``\\,`` ``\\|`` ``\\$`` ``\\\\`` keep their meaning."""
    out: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            current.append("\\" + value[i + 1])
            i += 2
            continue
        if ch == ",":
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    out.append("".join(current))
    return out


def unescape(value: str) -> str:
    return value.replace("\\,", ",").replace("\\|", "|").replace("\\$", "$").replace("\\\\", "\\")


def split_pipe(value: str, limit: int = 1) -> list[str]:
    """Split on unescaped ``|`` (at most ``limit`` times), unescaping the parts."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            current.append(value[i : i + 2])
            i += 2
            continue
        if ch == "|" and len(parts) < limit:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return [unescape(p) for p in parts]


def parse_token_value(name: str, raw: str) -> TokenValue:
    if not raw:
        raise bad(name, "empty value")
    parts = split_pipe(raw)
    if len(parts) == 1:
        return TokenValue(None, parts[0], False)
    system, code = parts
    if not system and not code:
        raise bad(name, f"{raw!r} has neither a system nor a code")
    return TokenValue(system or None, code or None, True)


def _prefix(name: str, raw: str) -> tuple[Prefix, str]:
    if raw[:2].isalpha():
        if raw[:2] not in PREFIXES:
            raise bad(name, f"unknown prefix {raw[:2]!r} in {raw!r} (use {', '.join(PREFIXES)})")
        return cast(Prefix, raw[:2]), raw[2:]
    return "eq", raw


def parse_date_value(name: str, raw: str, now_micros: int) -> Range:
    prefix, text = _prefix(name, raw)
    try:
        lo, hi = date_range(restore_plus(text))
    except BadValue as exc:
        raise bad(name, str(exc)) from exc
    if prefix == "ap":
        gap = int(abs(now_micros - lo) * 0.1) or 1
        lo, hi = lo - gap, hi + gap
    return Range(prefix, float(lo), float(hi))


def number_range(name: str, prefix: Prefix, text: str) -> Range:
    """Bounds as a closed/open interval per prefix (see ``number_bounds``)."""
    try:
        value, plo, phi = parse_number(text)
    except BadValue as exc:
        raise bad(name, str(exc)) from exc
    if prefix in ("eq", "ne"):
        return Range(prefix, plo, phi, value)
    if prefix in ("gt", "sa", "ge"):
        return Range(prefix, value, INF, value)
    if prefix in ("lt", "eb", "le"):
        return Range(prefix, -INF, value, value)
    spread = abs(value) * 0.1
    return Range("ap", value - spread, value + spread, value)


def number_bounds(r: Range) -> tuple[float, bool, float, bool, bool]:
    """(lo, lo_inclusive, hi, hi_inclusive, negate) of a number/quantity criterion."""
    lo_incl = r.prefix not in ("gt", "sa")
    hi_incl = r.prefix not in ("eq", "ne", "lt", "eb")
    return r.lo, lo_incl, r.hi, hi_incl, r.prefix == "ne"


def parse_quantity_value(name: str, raw: str) -> Range:
    parts = split_pipe(raw, 2)
    prefix, number = _prefix(name, parts[0])
    r = number_range(name, prefix, number)
    system = parts[1] if len(parts) > 1 and parts[1] else None
    code = parts[2] if len(parts) > 2 and parts[2] else None
    return Range(r.prefix, r.lo, r.hi, r.value, system, code)


def parse_reference_value(
    name: str, raw: str, type_modifier: str | None, base_url: str | None
) -> RefValue:
    text = unescape(raw)
    if not text:
        raise bad(name, "empty reference")
    if base_url and text.startswith(base_url.rstrip("/") + "/"):
        text = text[len(base_url.rstrip("/")) + 1 :]
    if "://" in text or text.startswith("urn:"):
        rtype, rid, url = split_reference(text)
        return RefValue(None, None, url or text)
    if "/" in text:
        rtype, rid, _ = split_reference(text)
        if rtype is None or rid is None:
            raise bad(name, f"{raw!r} is not a reference (Type/id, id or an absolute URL)")
        if type_modifier and rtype != type_modifier:
            raise bad(name, f"{raw!r} is not a {type_modifier} reference")
        return RefValue(rtype, rid)
    return RefValue(type_modifier, text)


def _leaf(
    name: str,
    param: SearchParam,
    modifier: str | None,
    raw_values: list[str],
    base_url: str | None,
    now_micros: int,
) -> Expr:
    code = param.code
    kind = param.type
    if kind == "token":
        if code == "_id":
            return Ids(tuple(unescape(v) for v in raw_values))
        if modifier == "text":
            texts = tuple(normalise_string(unescape(v)) for v in raw_values)
            names = text_params(param.resource_type, code)  # combo-code: code, component-code
            by_name = tuple(String(name, texts) for name in names)
            return by_name[0] if len(by_name) == 1 else Or(by_name)
        if modifier == "of-type":
            values = []
            for v in raw_values:
                parts = split_pipe(v, 2)
                if len(parts) != 3 or not all(parts):
                    raise bad(name, f"{v!r}: :of-type takes system|code|value")
                values.append(TokenValue(parts[0], f"{parts[1]}|{parts[2]}", True))
            return Token(code + ":of-type", tuple(values))
        leaf = Token(code, tuple(parse_token_value(name, v) for v in raw_values))
        return Not(leaf) if modifier == "not" else leaf
    if kind == "string":
        if modifier == "exact":
            return String(code, tuple(unescape(v) for v in raw_values), "exact")
        mode: Literal["start", "contains"] = "contains" if modifier == "contains" else "start"
        strings = [normalise_string(unescape(v)) for v in raw_values]
        if not all(strings):
            raise bad(name, "empty string value")
        return String(code, tuple(strings), mode)
    if kind == "reference":
        if modifier == "identifier":
            return Token(
                code + ":identifier", tuple(parse_token_value(name, v) for v in raw_values)
            )
        return Reference(
            code, tuple(parse_reference_value(name, v, modifier, base_url) for v in raw_values)
        )
    if kind == "date":
        return Dates(code, tuple(parse_date_value(name, v, now_micros) for v in raw_values))
    if kind == "number":
        return Numbers(code, tuple(number_range(name, *_prefix(name, v)) for v in raw_values))
    if kind == "quantity":
        return Quantities(code, tuple(parse_quantity_value(name, v) for v in raw_values))
    if kind == "uri":
        uri_mode: Literal["eq", "below", "above"] = (
            "below" if modifier == "below" else "above" if modifier == "above" else "eq"
        )
        return Uri(code, tuple(unescape(v) for v in raw_values), uri_mode)
    if kind == "composite":
        values_c = []
        for v in raw_values:
            parts = v.split("$")
            if len(parts) != len(param.components):
                raise bad(name, f"{v!r} needs {len(param.components)} parts separated by '$'")
            leaves: list[Leaf] = []
            for comp, part in zip(param.components, parts, strict=True):
                leaves.append(
                    cast(Leaf, _leaf(name, comp.param, None, [part], base_url, now_micros))
                )
            values_c.append(CompositeValue(tuple(leaves)))
        return Composite(code, tuple(values_c))
    raise bad(name, f"parameters of type {kind!r} are not supported")


MODIFIERS = {
    "token": ("not", "text", "of-type"),
    "string": ("exact", "contains"),
    "reference": ("identifier",),
    "uri": ("below", "above"),
    "date": (),
    "number": (),
    "quantity": (),
    "composite": (),
}


class _Unknown(Exception):
    """A parameter or modifier that is not known/supported: a warning, or 400 if strict."""

    def __init__(self, message: str, code: str = "not-supported") -> None:
        super().__init__(message)
        self.code = code


def _params_for(types: tuple[str, ...]) -> dict[str, SearchParam]:
    if len(types) == 1:
        return registry().params(types[0])
    return common_params(list(types))


def parse_criterion(
    types: tuple[str, ...],
    name: str,
    value: str,
    base_url: str | None,
    now_micros: int,
    depth: int = 0,
) -> Expr:
    """One ``name=value`` criterion on ``types`` (raises ``_Unknown`` or ``FhirError``)."""
    if name.startswith("_has:"):
        return _parse_has(types, name, value, base_url, now_micros, depth)
    chain_rest: str | None = None
    head = name
    if "." in name:
        head, chain_rest = name.split(".", 1)
    code, _, modifier = head.partition(":")
    params = _params_for(types)
    param = params.get(code)
    if param is None or (param.evaluate is None and code != "_id"):
        where = types[0] if len(types) == 1 else "the types searched"
        raise _Unknown(f"Unknown search parameter {code!r} for {where}")
    if chain_rest is not None:
        if param.type != "reference":
            raise bad(name, f"{code!r} is not a reference parameter, it cannot be chained")
        if depth >= MAX_CHAIN_DEPTH:
            raise _Unknown(f"Chains deeper than {MAX_CHAIN_DEPTH} are not supported ({name!r})")
        if modifier and not is_resource_type(modifier):
            raise bad(name, f"{modifier!r} is not a resource type")
        targets = (modifier,) if modifier else param.targets
        if not targets:
            raise bad(name, f"{code!r} has no target types to chain through")
        chains: list[Expr] = []
        problems: list[Exception] = []
        for target in targets:
            try:
                inner = parse_criterion(
                    (target,), chain_rest, value, base_url, now_micros, depth + 1
                )
            except _Unknown as exc:
                problems.append(exc)
                continue
            chains.append(Chain(code, target, inner))
        if not chains:
            raise problems[0] if problems else _Unknown(f"cannot chain {name!r}")
        return chains[0] if len(chains) == 1 else Or(tuple(chains))
    raw_values = split_values(value)
    if modifier == "missing":
        if value not in ("true", "false"):
            raise bad(name, f":missing takes true or false, not {value!r}")
        if code == "_id":
            return Ids(()) if value == "true" else And(())
        return Missing(code, param.type, value == "true")
    if modifier:
        allowed = MODIFIERS.get(param.type, ())
        if param.type == "reference" and is_resource_type(modifier):
            if param.targets and modifier not in param.targets:
                raise bad(name, f"{modifier!r} is not a target type of {code!r}")
        elif modifier not in allowed or (modifier == "of-type" and code != "identifier"):
            raise _Unknown(f"Modifier :{modifier} is not supported on {code!r} ({param.type})")
    if not any(raw_values) and not (param.type == "token" and modifier == "text"):
        raise bad(name, "no value")
    raw_values = [v for v in raw_values if v != ""] or raw_values
    return _leaf(name, param, modifier or None, raw_values, base_url, now_micros)


def _parse_has(
    types: tuple[str, ...], name: str, value: str, base_url: str | None, now_micros: int, depth: int
) -> Expr:
    parts = name.split(":", 3)
    if len(parts) < 4 or not all(parts[1:]):
        raise bad(name, "_has takes _has:Type:reference-parameter:parameter=value")
    _, source_type, ref_param, rest = parts
    if not is_resource_type(source_type):
        raise bad(name, f"{source_type!r} is not a resource type")
    ref = registry().get(source_type, ref_param)
    if ref is None or ref.type != "reference":
        raise bad(name, f"{ref_param!r} is not a reference parameter of {source_type}")
    if depth >= MAX_CHAIN_DEPTH:
        raise _Unknown(f"_has nested deeper than {MAX_CHAIN_DEPTH} is not supported")
    if len(types) == 1 and ref.targets and types[0] not in ref.targets:
        raise bad(name, f"{source_type}.{ref_param} does not reference {types[0]}")
    inner = parse_criterion((source_type,), rest, value, base_url, now_micros, depth + 1)
    return Has(source_type, ref_param, inner)


def _sort_keys(types: tuple[str, ...], value: str) -> tuple[SortKey, ...]:
    keys: list[SortKey] = []
    params = _params_for(types)
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        descending = item.startswith("-")
        code = item.lstrip("-")
        if code == "_id":
            keys.append(SortKey("_id", "id", descending))
            continue
        if code == "_lastUpdated":
            keys.append(SortKey("_lastUpdated", "lastUpdated", descending))
            continue
        param = params.get(code)
        if param is None or param.evaluate is None:
            raise _Unknown(f"Unknown sort parameter {code!r}")
        if param.type in ("composite", "special"):
            raise _Unknown(f"Cannot sort on {code!r} ({param.type})")
        keys.append(SortKey(code, param.type, descending))
    return tuple(keys)


def _include(types: tuple[str, ...], name: str, value: str, reverse: bool) -> Include:
    modifier = name.partition(":")[2]
    if modifier not in ("", "iterate", "recurse"):
        raise _Unknown(f"Unknown modifier on {name}")
    iterate = modifier in ("iterate", "recurse")
    if value == "*":
        # _include=*: every reference of the matches; _revinclude=*: every resource of
        # any type that references a match through any reference parameter.
        return Include(IncludeSpec("*", None, None, reverse), iterate)
    parts = value.split(":")
    if len(parts) not in (2, 3):
        raise bad(name, f"{value!r}: expected SourceType:parameter[:TargetType]")
    source, code = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if not is_resource_type(source) or (target is not None and not is_resource_type(target)):
        raise bad(name, f"{value!r} names an unknown resource type")
    if not reverse and not iterate and types and source not in types:
        raise bad(name, f"{value!r}: {source} is not a type searched")
    if code == "*":
        return Include(IncludeSpec(source, None, target, reverse), iterate)
    param = registry().get(source, code)
    if param is None or param.type != "reference":
        raise _Unknown(f"{value!r}: {code!r} is not a reference parameter of {source}")
    return Include(IncludeSpec(source, code, target, reverse), iterate)


def check_search_size(pairs: Sequence[tuple[str, str]]) -> None:
    """400 (``too-costly``) for a search with more parameters or values than the caps."""
    if len(pairs) > MAX_PARAMETERS:
        raise FhirError.of(
            400,
            "too-costly",
            f"A search takes at most {MAX_PARAMETERS} parameters; this one has {len(pairs)}",
        )
    total = 0
    for name, value in pairs:
        if name in ("_type", "_elements"):  # lists of names, not terms of the query
            continue
        values = value.count(",") - value.count("\\,") + 1
        if values > MAX_VALUES_PER_PARAMETER:
            raise FhirError.of(
                400,
                "too-costly",
                f"Search parameter {name[:60]!r} has {values} values; at most"
                f" {MAX_VALUES_PER_PARAMETER} are allowed",
                (name[:60],),
            )
        total += values
    if total > MAX_VALUES:
        raise FhirError.of(
            400,
            "too-costly",
            f"A search takes at most {MAX_VALUES} values in all; this one has {total}",
        )


def parse_search(
    types: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    *,
    base_url: str | None = None,
    default_count: int = 20,
    max_count: int = 1000,
    strict: bool = False,
    now: float | None = None,
) -> ParsedSearch:
    """Parse ``pairs`` (the decoded query) for a search over ``types`` (empty: all)."""
    check_search_size(pairs)
    result = ParsedSearch(tuple(types), count=default_count)
    now_micros = int((time.time() if now is None else now) * 1_000_000)
    terms: list[Expr] = []

    def unknown(name: str, message: str, code: str = "not-supported") -> None:
        if strict:
            raise FhirError.of(400, code, message, (name,))
        result.warnings.append(Issue("warning", code, f"{message}; the parameter was ignored"))

    for name, value in pairs:
        base = name.split(":", 1)[0]
        try:
            if base in TRANSPARENT:
                if base == "_cursor":
                    result.cursor = value
                continue
            if base == "_count":
                if not value.isdigit():
                    raise bad(name, f"{value!r} is not a non-negative integer")
                result.count = min(int(value), max_count)
            elif base == "_sort":
                result.sort = _sort_keys(result.types, value)
            elif base == "_summary":
                if value not in SUMMARY_MODES:
                    raise bad(name, f"{value!r} is not one of {', '.join(SUMMARY_MODES)}")
                result.summary = None if value == "false" else value
            elif base == "_elements":
                result.elements = tuple(e.strip() for e in value.split(",") if e.strip())
            elif base == "_total":
                if value not in TOTAL_MODES:
                    raise bad(name, f"{value!r} is not one of {', '.join(TOTAL_MODES)}")
                result.total = value
            elif base == "_include":
                result.includes.append(_include(result.types, name, value, reverse=False))
            elif base == "_revinclude":
                result.revincludes.append(_include(result.types, name, value, reverse=True))
            elif base == "_type":
                continue  # resolved by the caller into ``types``
            elif base in UNSUPPORTED_RESULT:
                raise _Unknown(f"Parameter {base!r} is not supported")
            else:
                terms.append(parse_criterion(result.types, name, value, base_url, now_micros))
        except _Unknown as exc:
            unknown(name, str(exc), exc.code)
            continue
        result.applied.append((name, value))
    if terms:
        result.where = terms[0] if len(terms) == 1 else And(tuple(terms))
    if MIN_INSTANT > MAX_INSTANT:  # pragma: no cover - keeps the imports honest
        raise AssertionError
    return result
