"""Schema keywords in Python for the invariants that compare values.

The generated schema selects the elements where such a rule can fail (a Period with a
start and an end, a Range with low and high, a Reference to ``#...``) and names the
keyword ``x-<key>``; the compiled validator calls these classes only there, so no
Python walk over the resource is needed. ``ref-1`` needs the ids of the root resource's
contained resources: ``server.validation`` sets them in ``CONTAINED_IDS`` around each
validation.
"""

from __future__ import annotations

from contextvars import ContextVar
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from server.validation.dates import compare_datetimes

if TYPE_CHECKING:
    from jsonschema_rs import KeywordValidator

CONTAINED_IDS: ContextVar[frozenset[str]] = ContextVar("contained_ids", default=frozenset())


class _Keyword:
    """The shape ``jsonschema_rs`` expects of a custom keyword."""

    def __init__(self, parent_schema: Any, value: Any, schema_path: Any) -> None:
        del parent_schema, value, schema_path

    def validate(self, instance: Any) -> None:
        raise NotImplementedError


class Per1(_Keyword):
    """``per-1``: a Period's start is not after its end."""

    def validate(self, instance: Any) -> None:
        if compare_datetimes(instance.get("start"), instance.get("end")) == 1:
            raise ValueError("per-1")


class Rng2(_Keyword):
    """``rng-2``: a Range's low is not above its high (same unit only; no UCUM maths)."""

    def validate(self, instance: Any) -> None:
        low, high = instance.get("low"), instance.get("high")
        if not isinstance(low, dict) or not isinstance(high, dict):
            return
        if (low.get("system"), low.get("code")) != (high.get("system"), high.get("code")):
            return
        try:
            above = Decimal(str(low["value"])) > Decimal(str(high["value"]))
        except (KeyError, InvalidOperation):
            return
        if above:
            raise ValueError("rng-2")


class Ref1(_Keyword):
    """``ref-1``: a local reference ``#id`` names a contained resource of the root."""

    def validate(self, instance: Any) -> None:
        reference = instance.get("reference")
        if isinstance(reference, str) and reference[1:] not in CONTAINED_IDS.get():
            raise ValueError("ref-1")


KEYWORDS: dict[str, type[KeywordValidator]] = {
    "x-per-1": Per1,
    "x-rng-2": Rng2,
    "x-ref-1": Ref1,
}
