"""The search expression tree: what a FHIR search means, independent of any backend.

``server.search.parse`` builds it from the query string; ``server.search.sql_render``
(SQLite) and ``server.search.mongo_render`` (MongoDB) turn it into a query. Every leaf
names the parameter code under which the index values were stored
(``server.search.extract``) and carries already-normalised values: each leaf is the OR
of its values, ``And`` is repetition of parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

Prefix = Literal["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]


@dataclass(frozen=True, slots=True)
class TokenValue:
    """``code`` (any system), ``system|code``, ``|code`` (no system), ``system|``."""

    system: str | None
    code: str | None
    system_given: bool


@dataclass(frozen=True, slots=True)
class RefValue:
    """A local reference (``type`` may be ``None``: any type) or an absolute ``url``."""

    type: str | None
    id: str | None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Range:
    """A prefixed range criterion for date, number and quantity (``lo``..``hi`` inclusive)."""

    prefix: Prefix
    lo: float
    hi: float
    value: float = 0.0  # number/quantity: the value itself (ap, sort)
    system: str | None = None  # quantity only
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Ids:
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OfType:
    """Resources of one of ``types``: how one ``where`` restricts a search over several
    types type by type (``server.auth.search_restriction``)."""

    types: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Token:
    param: str
    values: tuple[TokenValue, ...]


@dataclass(frozen=True, slots=True)
class String:
    param: str
    values: tuple[str, ...]  # normalised for starts-with / contains, raw for exact
    mode: Literal["start", "exact", "contains"] = "start"


@dataclass(frozen=True, slots=True)
class Reference:
    param: str
    values: tuple[RefValue, ...]


@dataclass(frozen=True, slots=True)
class Dates:
    param: str
    values: tuple[Range, ...]


@dataclass(frozen=True, slots=True)
class Numbers:
    param: str
    values: tuple[Range, ...]


@dataclass(frozen=True, slots=True)
class Quantities:
    param: str
    values: tuple[Range, ...]


@dataclass(frozen=True, slots=True)
class Uri:
    param: str
    values: tuple[str, ...]
    mode: Literal["eq", "below", "above"] = "eq"


@dataclass(frozen=True, slots=True)
class CompositeValue:
    """One value of a composite: one criterion per component (``Token``-like leaves)."""

    parts: tuple[Leaf, ...]


@dataclass(frozen=True, slots=True)
class Composite:
    param: str
    values: tuple[CompositeValue, ...]


@dataclass(frozen=True, slots=True)
class Missing:
    """``param:missing=true|false``; ``kind`` is the parameter type (the index to look in)."""

    param: str
    kind: str
    missing: bool


@dataclass(frozen=True, slots=True)
class Not:
    expr: Expr


@dataclass(frozen=True, slots=True)
class And:
    exprs: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    exprs: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Chain:
    """Resources whose reference ``param`` points at a ``target_type`` matching ``expr``."""

    param: str
    target_type: str
    expr: Expr


@dataclass(frozen=True, slots=True)
class Has:
    """``_has:source_type:param:...``: resources that ``source_type`` resources matching
    ``expr`` reference through ``param``."""

    source_type: str
    param: str
    expr: Expr


Leaf = Union[Token, String, Reference, Dates, Numbers, Quantities, Uri]  # noqa: UP007
Expr = Union[  # noqa: UP007
    Ids,
    OfType,
    Token,
    String,
    Reference,
    Dates,
    Numbers,
    Quantities,
    Uri,
    Composite,
    Missing,
    Not,
    And,
    Or,
    Chain,
    Has,
]
KIND_OF_LEAF = {
    Token: "token",
    String: "string",
    Reference: "reference",
    Dates: "date",
    Numbers: "number",
    Quantities: "quantity",
    Uri: "uri",
    Composite: "composite",
}
