"""Scope restrictions rendered into the search expression tree (``server.search.expr``).

A patient-context or query-restricted scope becomes part of the ``where`` of the search
itself, so paging, ``_total`` and ``_count`` are computed over what the token may see.
Chains and ``_has`` are restricted the same way on the type they traverse (and refused
for types the token may not search), so they cannot be used to probe other patients'
data. Results and includes still pass ``SmartPolicy.can_see`` in the repository.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from server.auth.scopes import Access
from server.errors import FhirError
from server.search.expr import And, Chain, Expr, Has, Ids, Not, OfType, Or, Reference, RefValue
from server.search.parse import parse_criterion
from server.search.registry import registry
from server.spec.resources import resource_types
from server.storage.port import SearchQuery

if TYPE_CHECKING:
    from server.auth.policy import SmartPolicy
    from server.repository import RequestContext

NOTHING: Expr = Ids(())


def compartment_expr(resource_type: str, patients: frozenset[str]) -> Expr:
    """Resources of ``resource_type`` in the compartment of any of ``patients``."""
    values = tuple(RefValue("Patient", p) for p in sorted(patients))
    alternatives: list[Expr] = []
    if resource_type == "Patient":
        alternatives.append(Ids(tuple(sorted(patients))))
    for code in registry().compartment_params("Patient", resource_type):
        if code != "{def}":
            alternatives.append(Reference(code, values))
    if not alternatives:
        return NOTHING
    return alternatives[0] if len(alternatives) == 1 else Or(tuple(alternatives))


def access_expr(access: Access, resource_type: str, base_url: str | None) -> Expr | None:
    """The ``where`` that limits ``resource_type`` to ``access`` (``None``: no limit)."""
    if access.unrestricted:
        return None
    now = int(time.time() * 1_000_000)
    alternatives: list[Expr] = []
    for condition in access.conditions:
        parts: list[Expr] = []
        if condition.patients is not None:
            parts.append(compartment_expr(resource_type, condition.patients))
        for name, value in condition.query:
            try:
                parts.append(parse_criterion((resource_type,), name, value, base_url, now))
            except Exception:  # an unusable scope query grants nothing (fail closed)
                parts.append(NOTHING)
        alternatives.append(parts[0] if len(parts) == 1 else And(tuple(parts)))
    return alternatives[0] if len(alternatives) == 1 else Or(tuple(alternatives))


def _both(a: Expr | None, b: Expr | None) -> Expr | None:
    if a is None:
        return b
    if b is None:
        return a
    return And((a, b))


def restrict_where(
    policy: SmartPolicy, ctx: RequestContext, expr: Expr | None, base_url: str | None
) -> Expr | None:
    """``expr`` with every chain and ``_has`` limited to what ``ctx`` may search."""
    if expr is None:
        return None
    if isinstance(expr, Chain):
        access = policy.restriction(ctx, "search-type", expr.target_type)
        inner = restrict_where(policy, ctx, expr.expr, base_url)
        limited = _both(inner, access_expr(access, expr.target_type, base_url))
        return Chain(expr.param, expr.target_type, limited if limited is not None else And(()))
    if isinstance(expr, Has):
        access = policy.restriction(ctx, "search-type", expr.source_type)
        inner = restrict_where(policy, ctx, expr.expr, base_url)
        limited = _both(inner, access_expr(access, expr.source_type, base_url))
        return Has(expr.source_type, expr.param, limited if limited is not None else And(()))
    if isinstance(expr, And):
        return And(tuple(restrict_where(policy, ctx, e, base_url) or And(()) for e in expr.exprs))
    if isinstance(expr, Or):
        return Or(tuple(restrict_where(policy, ctx, e, base_url) or And(()) for e in expr.exprs))
    if isinstance(expr, Not):
        return Not(restrict_where(policy, ctx, expr.expr, base_url) or And(()))
    return expr


def restrict_search(policy: SmartPolicy, ctx: RequestContext, query: SearchQuery) -> SearchQuery:
    where = restrict_where(policy, ctx, query.where, ctx.base_url)
    if len(query.types) == 1:
        rtype = query.types[0]
        where = _both(
            where, access_expr(policy.restriction(ctx, "search-type", rtype), rtype, ctx.base_url)
        )
    else:
        where = _both(where, types_expr(policy, ctx, query.types))
    return replace(query, where=where)


def types_expr(policy: SmartPolicy, ctx: RequestContext, types: tuple[str, ...]) -> Expr | None:
    """The ``where`` limiting a search over several types (none given: every FHIR type)
    to what ``ctx`` may search, type by type: ``(type A and A's compartment) or (type B
    and B's compartment) or (a type searched without restriction)``. With no ``_type``,
    the types the token may not search are left out rather than refused; with ``_type``
    the repository has already refused them. Totals and ``_summary=count`` are then
    counted over exactly what the token may see."""
    open_types: list[str] = []
    limited: list[Expr] = []
    candidates = types or tuple(sorted(resource_types()))
    for rtype in candidates:
        try:
            access = policy.restriction(ctx, "search-type", rtype)
        except FhirError:
            if types:
                raise
            continue
        expr = access_expr(access, rtype, ctx.base_url)
        if expr is None:
            open_types.append(rtype)
        elif expr != NOTHING:
            limited.append(And((OfType((rtype,)), expr)))
    if not limited and len(open_types) == len(candidates):
        return None  # unrestricted on every type searched
    alternatives = ([OfType(tuple(open_types))] if open_types else []) + limited
    if not alternatives:
        return NOTHING
    return alternatives[0] if len(alternatives) == 1 else Or(tuple(alternatives))
