"""Search index values extracted from a resource once, at write time.

``extract_index_values`` evaluates every search parameter the registry defines for the
resource's type (compiled FHIRPath, ``server.search.fhirpath``) and turns the nodes into
typed index rows (``SearchIndex``) that both backends store next to the resource.

Derived rows under a suffixed name serve modifiers without extra tables:
``<param>:text`` (string rows from CodeableConcept/Coding/Identifier text and display, one
per word onwards so that a word inside the text matches; none for a parameter that is
the union of others, whose ``:text`` searches theirs: ``derived_text``),
``<param>:identifier`` (token rows from ``Reference.identifier``) and
``identifier:of-type`` (token rows ``type-system | type-code|value``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from server.search.fhirpath import (
    Evaluator,
    relative_root_keys,
    root_keys,
    split_top_level,
)
from server.search.node_values import (
    CONTACT_SYSTEMS,
    component_parts,
    date_values,
    quantity_values,
    split_reference,
    string_values,
)
from server.search.registry import SearchParam, registry
from server.search.values import date_range, normalise_string
from server.storage.port import CompositePart, SearchIndex

_SKIP = frozenset(("_id", "_text", "_content", "_query"))


class _Collector:
    __slots__ = (
        "tokens",
        "strings",
        "refs",
        "dates",
        "numbers",
        "quantities",
        "uris",
        "comps",
        "parts",
    )

    def __init__(self) -> None:
        self.tokens: dict[tuple[str, str | None, str], None] = {}
        self.strings: dict[tuple[str, str, str], None] = {}
        self.refs: dict[tuple[str, str | None, str | None, str | None], None] = {}
        self.dates: dict[tuple[str, int, int], None] = {}
        self.numbers: dict[tuple[str, float], None] = {}
        self.quantities: dict[tuple[str, str | None, str | None, float], None] = {}
        self.uris: dict[tuple[str, str], None] = {}
        self.comps: dict[tuple[str, tuple[CompositePart, ...]], None] = {}
        # The parts of one component on one node, by (type, expression, id(node)): the
        # composites of a type share components (``code-value-quantity`` and
        # ``combo-code-value-quantity`` both read ``code`` and ``value`` of the resource).
        # A node is an element of the resource, alive while it is extracted.
        self.parts: dict[tuple[str, str | None, int], list[CompositePart]] = {}

    def result(self) -> SearchIndex:
        return SearchIndex(
            tokens=_shared(self.tokens),
            strings=tuple(self.strings),  # mostly the shared rows of ``_text_rows``
            references=tuple(self.refs),  # mostly the shared rows of ``_reference_row``
            dates=tuple(self.dates),
            numbers=tuple(self.numbers),
            quantities=tuple(self.quantities),
            uris=_shared(self.uris),
            composites=tuple(self.comps),
        )


# Rows seen recently, each kept once: the resources of one patient repeat the same rows
# (``subject`` = the patient, ``encounter``, category and code tokens, ``:text`` words),
# and a transaction holds every row of its writes until the commit: sharing them halves
# the memory of a 40,000-entry bundle's index (tuples, not lists: no spare capacity).
# Bounded: forgotten past ``_SHARED_LIMIT`` rows.
_SHARED_ROWS: dict[Any, Any] = {}
_SHARED_LIMIT = 200_000


def _shared(rows: dict[Any, None]) -> tuple[Any, ...]:
    if not rows:
        return ()  # the one empty tuple: most resources fill few of the eight kinds
    table = _SHARED_ROWS
    if len(table) > _SHARED_LIMIT:
        table.clear()
    return tuple([table.setdefault(row, row) for row in rows])


def _string(c: _Collector, param: str, value: str) -> None:
    if value:
        c.strings[(param, normalise_string(value), value)] = None


def _text(c: _Collector, param: str, value: str) -> None:
    """A ``:text`` row for the text and for each of its words onwards: string search is
    "starts with", and ``code:text=bronchitis`` must find "Acute bronchitis (disorder)"
    (R4 ``:text`` searches the text, not only its beginning; HAPI and Firely match words)."""
    strings = c.strings
    for row in _text_rows(param, value):
        strings[row] = None


@lru_cache(maxsize=32768)
def _text_rows(param: str, value: str) -> tuple[tuple[str, str, str], ...]:
    """The rows ``(param, normalised, exact)`` of each word-suffix of ``value``. Cached:
    codings repeat their display text on every resource that carries them (the same few
    thousand texts make up most of a clinical feed), this is the most costly row to
    build, and the cached row objects are shared by every index that holds them."""
    words = value.split()
    out: list[tuple[str, str, str]] = []
    for i in range(len(words)):
        exact = " ".join(words[i:])
        out.append((param, normalise_string(exact), exact))
    return tuple(out)


def _token(c: _Collector, param: str, node: Any) -> None:
    """The token rows of one node and its ``:text`` rows (text and display of the
    concept, its codings, an identifier's type)."""
    if _token_codes(c, param, node):
        _token_text(c, param, node)


def _token_codes(c: _Collector, param: str, node: Any) -> bool:
    """The token rows of one node (``token_values``, inlined: the commonest row kind) and
    ``:of-type`` rows (an identifier's type code with its value). True for an element
    (a dict: it may carry text)."""
    tokens = c.tokens
    if not isinstance(node, dict):
        if isinstance(node, bool):
            tokens[(param, None, "true" if node else "false")] = None
        elif isinstance(node, str | int | float):
            tokens[(param, None, str(node))] = None
        return False
    codings = node.get("coding")
    if isinstance(codings, list):  # CodeableConcept
        for coding in codings:
            if isinstance(coding, dict):
                code = coding.get("code")
                if code is not None:
                    system = coding.get("system")
                    tokens[(param, system if isinstance(system, str) else None, str(code))] = None
    elif "code" in node and not isinstance(node.get("code"), dict):  # Coding, Quantity
        if node["code"] is not None:
            system = node.get("system")
            tokens[(param, system if isinstance(system, str) else None, str(node["code"]))] = None
    elif node.get("value") is not None and not isinstance(node["value"], dict):
        # Identifier (system|value); ContactPoint (value; its system is not a URI)
        system = node.get("system")
        if system in CONTACT_SYSTEMS or not isinstance(system, str):
            system = None
        tokens[(param, system, str(node["value"]))] = None
    ident_type = node.get("type")
    if isinstance(ident_type, dict) and isinstance(node.get("value"), str):
        for coding in ident_type.get("coding") or ():
            if isinstance(coding, dict) and coding.get("code"):
                key = f"{coding['code']}|{node['value']}"
                tokens[(param + ":of-type", coding.get("system"), key)] = None
    return True


def _token_text(c: _Collector, param: str, node: dict[str, Any]) -> None:
    text_param = _TEXT_NAMES.get(param) or _TEXT_NAMES.setdefault(param, param + ":text")
    strings = c.strings
    text = node.get("text")
    if isinstance(text, str):
        for row in _text_rows(text_param, text):
            strings[row] = None
    display = node.get("display")
    if isinstance(display, str):
        for row in _text_rows(text_param, display):
            strings[row] = None
    for coding in node.get("coding") or ():
        if isinstance(coding, dict):
            display = coding.get("display")
            if isinstance(display, str):
                for row in _text_rows(text_param, display):
                    strings[row] = None
    ident_type = node.get("type")
    if isinstance(ident_type, dict) and isinstance(node.get("value"), str):
        if isinstance(ident_type.get("text"), str):
            _text(c, text_param, ident_type["text"])


def _token_without_text(c: _Collector, param: str, node: Any) -> None:
    """A token parameter whose ``:text`` is derived (``derived_text``): codes only."""
    _token_codes(c, param, node)


@cache
def derived_text(rtype: str) -> dict[str, tuple[str, ...]]:
    """Token parameters of ``rtype`` whose expression is a union of the expressions of
    other token parameters, and the ``:text`` names those hold the same text under.

    Observation's ``combo-code`` is ``Observation.code | Observation.component.code``:
    its ``:text`` rows would be exactly the ``code:text`` and ``component-code:text``
    rows again (5 of a Synthea Observation's ~30 index rows). They are not stored;
    ``combo-code:text=x`` is searched as ``code:text=x`` OR ``component-code:text=x``
    (``text_params``), which matches the same resources (``test_derived_text``).
    Stores written before keep the rows; the OR finds the same resources there."""
    single: dict[str, str] = {}
    params = registry().params(rtype)
    for p in params.values():
        if p.type == "token" and p.expression:
            members = split_top_level(p.expression)
            if len(members) == 1:
                single.setdefault(members[0], p.code)
    out: dict[str, tuple[str, ...]] = {}
    for p in params.values():
        if p.type != "token" or not p.expression or p.code in _SKIP:
            continue
        members = split_top_level(p.expression)
        sources = [single.get(m) for m in members]
        if len(members) > 1 and all(s is not None and s != p.code for s in sources):
            out[p.code] = tuple(f"{s}:text" for s in dict.fromkeys(sources) if s is not None)
    return out


def text_params(rtype: str, code: str) -> tuple[str, ...]:
    """The ``:text`` row names that ``<code>:text`` searches on ``rtype``: its own, or
    those of the parameters it is the union of (``derived_text``)."""
    return derived_text(rtype).get(code) or (code + ":text",)


_TEXT_NAMES: dict[str, str] = {}  # param -> "param:text", one string object each


@lru_cache(maxsize=65536)
def _reference_row(param: str, reference: str) -> tuple[str, str | None, str | None, str | None]:
    """The row of ``Reference.reference`` (cached and shared, as ``_text_rows``)."""
    return (param, *split_reference(reference))


def _reference(c: _Collector, param: str, node: Any) -> None:
    if isinstance(node, str):  # canonical / uri target
        url = node.split("|", 1)[0]
        rtype, rid, absolute = split_reference(url)
        c.refs[(param, rtype, rid, absolute or (url if rtype is None else None))] = None
        return
    if not isinstance(node, dict):
        return
    ref = node.get("reference")
    if isinstance(ref, str):
        c.refs[_reference_row(param, ref)] = None
    ident = node.get("identifier")
    if isinstance(ident, dict):
        _token(c, param + ":identifier", ident)


Adder = Callable[[_Collector, str, Any], None]


def _add_string(c: _Collector, code: str, node: Any) -> None:
    for s in string_values(node):
        _string(c, code, s)


def _add_date(c: _Collector, code: str, node: Any) -> None:
    for lo, hi in date_values(node):
        c.dates[(code, lo, hi)] = None


def _add_number(c: _Collector, code: str, node: Any) -> None:
    if isinstance(node, int | float) and not isinstance(node, bool):
        c.numbers[(code, float(node))] = None
    elif isinstance(node, dict) and isinstance(node.get("value"), int | float):
        c.numbers[(code, float(node["value"]))] = None


def _add_quantity(c: _Collector, code: str, node: Any) -> None:
    for system, unit, value in quantity_values(node):
        c.quantities[(code, system, unit, value)] = None


def _add_uri(c: _Collector, code: str, node: Any) -> None:
    if isinstance(node, str):
        c.uris[(code, node)] = None


def _add_nothing(c: _Collector, code: str, node: Any) -> None:
    return None


_ADDERS: dict[str, Adder] = {
    "token": _token,
    "string": _add_string,
    "reference": _reference,
    "date": _add_date,
    "number": _add_number,
    "quantity": _add_quantity,
    "uri": _add_uri,
}


def _add(c: _Collector, param: SearchParam, node: Any) -> None:
    """The rows of one node of a (non-composite) parameter."""
    _ADDERS.get(param.type, _add_nothing)(c, param.code, node)


def _composite(c: _Collector, param: SearchParam, node: Any, resource: Any) -> None:
    """The rows of one node of a composite: every combination of its components' parts.

    Every component's nodes are found before any part is built: a node without a value
    for one component (an Observation's ``value`` of another type) yields no row, and
    finding that out is cheaper than the parts of the components before it."""
    memo = c.parts
    where = id(node)
    found: list[tuple[Any, list[Any] | None, list[CompositePart] | None]] = []
    for comp in param.components:
        key = (comp.param.type, comp.param.expression, where)
        parts = memo.get(key)
        if parts is None:
            values = comp.evaluate(node, resource)
            if not values:
                memo[key] = []
                return
            found.append((key, values, None))
        elif not parts:
            return
        else:
            found.append((key, None, parts))
    combos: list[tuple[CompositePart, ...]] = [()]
    for comp, (key, nodes, known) in zip(param.components, found, strict=True):
        if known is None:
            assert nodes is not None
            known = memo[key] = [p for v in nodes for p in component_parts(comp.param, v)]
        if not known:
            return
        combos = [combo + (p,) for combo in combos for p in known][:64]
    for combo in combos:
        c.comps[(param.code, combo)] = None


# A parameter as extraction runs it: its code, its evaluator, and either the adder of
# its kind or, for a composite, the parameter itself (its components build the rows).
_Run = tuple[str, Evaluator, Adder | None, SearchParam]

# When a parameter can yield a value: any one of its alternatives holds, an alternative
# being key sets that must each meet the resource's top-level keys (``root_keys``).
_Condition = tuple[tuple[frozenset[str], ...], ...]


@dataclass(frozen=True, slots=True)
class _TypePlan:
    """The indexed parameters of one resource type, in registry order, and which of them
    each top-level key of a resource can feed (``fhirpath.root_keys``)."""

    params: tuple[SearchParam, ...]
    runs: tuple[_Run, ...]  # one per parameter, same order
    by_key: dict[str, tuple[int, ...]]
    always: tuple[int, ...]  # evaluated whatever the keys (no root key)
    # Parameters with several alternatives (composites over the resource and its parts:
    # ``Observation | Observation.component``), each checked against the resource.
    conditional: tuple[tuple[int, _Condition], ...]
    last_updated: int | None  # ``_lastUpdated``: indexed from ``meta`` or the given instant
    # The runs chosen for a set of top-level keys (resources of one type mostly share
    # theirs): bounded, forgotten past ``_CHOICE_LIMIT`` sets.
    chosen: dict[tuple[str, ...], tuple[_Run, ...]]


_CHOICE_LIMIT = 4096


def _condition(param: SearchParam, rtype: str) -> _Condition | None:
    """When ``param`` can yield a value for a resource of ``rtype`` (None: always)."""
    expression = param.expression
    if not expression:
        return None
    if param.type != "composite":
        keys = root_keys(expression, rtype)
        return None if keys is None else ((keys,),)
    alternatives: list[tuple[frozenset[str], ...]] = []
    for member in split_top_level(expression):
        if member.strip() == rtype:
            # The resource itself: a row needs a value of every component, so each
            # needs one of the keys its component reads.
            needs = [relative_root_keys(str(comp.param.expression)) for comp in param.components]
            if not needs or any(n is None for n in needs):
                return None
            alternatives.append(tuple(n for n in needs if n is not None))
            continue
        keys = root_keys(member, rtype)
        if keys is None:
            return None
        alternatives.append((keys,))
    return tuple(alternatives)


@cache
def _plan(rtype: str) -> _TypePlan:
    params = tuple(
        p
        for p in registry().params(rtype).values()
        if p.evaluate is not None and p.code not in _SKIP
    )
    runs: list[_Run] = []
    by_key: dict[str, list[int]] = {}
    always: list[int] = []
    conditional: list[tuple[int, _Condition]] = []
    last_updated: int | None = None
    derived = derived_text(rtype)
    for i, param in enumerate(params):
        assert param.evaluate is not None
        adder = None if param.type == "composite" else _ADDERS.get(param.type, _add_nothing)
        if param.code in derived:
            adder = _token_without_text
        runs.append((param.code, param.evaluate, adder, param))
        if param.code == "_lastUpdated":
            last_updated = i
            continue
        condition = _condition(param, rtype)
        if condition is None:
            always.append(i)
        elif len(condition) == 1 and len(condition[0]) == 1:
            for key in condition[0][0]:
                by_key.setdefault(key, []).append(i)
        else:
            conditional.append((i, condition))
    return _TypePlan(
        params,
        tuple(runs),
        {k: tuple(v) for k, v in by_key.items()},
        tuple(always),
        tuple(conditional),
        last_updated,
        {},
    )


def _chosen(plan: _TypePlan, keys: tuple[str, ...]) -> tuple[_Run, ...]:
    """The runs of the parameters that can yield a value for a resource with ``keys``
    (the others yield nothing: none of the elements their expressions start from is
    present), in registry order; ``_lastUpdated`` apart."""
    chosen = set(plan.always)
    by_key = plan.by_key
    for key in keys:
        found = by_key.get(key)
        if found is not None:
            chosen.update(found)
    present = frozenset(keys)
    for i, condition in plan.conditional:
        if any(all(not need.isdisjoint(present) for need in alt) for alt in condition):
            chosen.add(i)
    runs = plan.runs
    return tuple(runs[i] for i in sorted(chosen))


def _params_for(resource: dict[str, Any], rtype: str) -> tuple[_Run, ...]:
    plan = _plan(rtype)
    keys = tuple(resource)
    found = plan.chosen.get(keys)
    if found is None:
        if len(plan.chosen) >= _CHOICE_LIMIT:
            plan.chosen.clear()
        found = plan.chosen[keys] = _chosen(plan, keys)
    return found


def extract_index_values(resource: dict[str, Any], last_updated: str | None = None) -> SearchIndex:
    """Every search index value of ``resource`` (``meta.lastUpdated`` may be given apart)."""
    rtype = resource.get("resourceType")
    c = _Collector()
    if not isinstance(rtype, str):
        return c.result()
    plan = _plan(rtype)
    if plan.last_updated is not None:
        if last_updated is not None:
            lo, hi = date_range(last_updated)
            c.dates[("_lastUpdated", lo, hi)] = None
        elif isinstance(resource.get("meta"), dict):
            _run(c, plan.runs[plan.last_updated], resource)
    for code, evaluate, adder, param in _params_for(resource, rtype):
        try:
            nodes = evaluate(resource)
        except (TypeError, AttributeError, ValueError):
            continue  # malformed data is not indexed; validation owns rejecting it
        if adder is None:
            for node in nodes:
                _composite(c, param, node, resource)
        else:
            for node in nodes:
                adder(c, code, node)
    return c.result()


def _run(c: _Collector, run: _Run, resource: dict[str, Any]) -> None:
    """One parameter's rows (the loop of ``extract_index_values``, for ``_lastUpdated``)."""
    code, evaluate, adder, param = run
    try:
        nodes = evaluate(resource)
    except (TypeError, AttributeError, ValueError):
        return
    if adder is None:
        for node in nodes:
            _composite(c, param, node, resource)
    else:
        for node in nodes:
            adder(c, code, node)
