"""SMART scopes (App Launch v1 and v2) and what a set of them grants.

A scope is ``context/ResourceType.permissions[?query]``: context ``patient``, ``user`` or
``system``; ``*`` for every type; v2 permissions are letters of ``cruds`` in that order,
v1 ``read`` (= ``rs``), ``write`` (= ``cud``) and ``*`` (= ``cruds``). Several scopes
combine as a union: an interaction is allowed when any scope allows it, and a resource is
visible when it satisfies the condition of any scope that allows the interaction. A
``system/`` (or unrestricted ``user/``) scope therefore widens, never narrows, what a
``patient/`` scope gives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

CONTEXTS = ("patient", "user", "system")
V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
ALL_PERMISSIONS = "cruds"

# The permission letter each repository interaction needs.
INTERACTION_PERMISSION = {
    "read": "r",
    "vread": "r",
    "history-instance": "r",
    "search-type": "s",
    "search-system": "s",
    "search-compartment": "s",
    "history-type": "s",
    "history-system": "s",
    "create": "c",
    "update": "u",
    "patch": "u",
    "delete": "d",
    "operation": "r",
    "export": "r",
}

# Types a wildcard scope does not cover: they must be named (``system/AuditEvent.rs``).
EXPLICIT_ONLY_TYPES = frozenset({"AuditEvent"})
# Types nobody may change through the API (the audit trail is append-only).
READ_ONLY_TYPES = frozenset({"AuditEvent"})

_SCOPE = re.compile(
    r"^(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]+)"
    r"\.(?P<perm>read|write|\*|c?r?u?d?s?)(?:\?(?P<query>.+))?$"
)


@dataclass(frozen=True, slots=True)
class Scope:
    """One parsed resource scope."""

    context: str
    resource_type: str
    permissions: frozenset[str]
    query: tuple[tuple[str, str], ...] = ()
    text: str = ""

    def covers_type(self, resource_type: str) -> bool:
        if self.resource_type == resource_type:
            return True
        return self.resource_type == "*" and resource_type not in EXPLICIT_ONLY_TYPES

    def covers(self, other: Scope) -> bool:
        """Whether granting ``self`` also grants everything ``other`` asks for."""
        if self.context != other.context or not other.permissions <= self.permissions:
            return False
        if self.resource_type != "*" and self.resource_type != other.resource_type:
            return False
        if self.resource_type == "*" and other.resource_type in EXPLICIT_ONLY_TYPES:
            return False
        return not self.query or set(self.query) <= set(other.query)


def parse_scope(text: str) -> Scope | None:
    """A resource scope, or ``None`` for other scopes (``openid``, ``launch/patient``...)."""
    match = _SCOPE.match(text)
    if match is None:
        return None
    perm = match["perm"]
    letters = V1_PERMISSIONS.get(perm, perm)
    if not letters:
        return None
    query = tuple(parse_qsl(match["query"], keep_blank_values=True)) if match["query"] else ()
    return Scope(match["context"], match["type"], frozenset(letters), query, text)


def split_scopes(scope: str | None) -> list[str]:
    return [s for s in (scope or "").split() if s]


@dataclass(frozen=True, slots=True)
class Condition:
    """What a resource must satisfy to be visible under one scope.

    ``patients``: the resource must be in the compartment of one of these patients
    (``None``: no compartment restriction). ``query``: SMART v2 query restriction
    (``category=system|code``), every pair must match.
    """

    patients: frozenset[str] | None
    query: tuple[tuple[str, str], ...] = ()

    @property
    def unrestricted(self) -> bool:
        return self.patients is None and not self.query


@dataclass(frozen=True, slots=True)
class Access:
    """The union of the conditions of every scope that allows one interaction on a type."""

    conditions: tuple[Condition, ...]

    @property
    def unrestricted(self) -> bool:
        return any(c.unrestricted for c in self.conditions)

    @property
    def patients(self) -> frozenset[str] | None:
        """The patient compartments a search must be limited to (``None``: not limited).

        Only meaningful when no condition carries a query restriction; search layers that
        cannot render query restrictions must fall back to ``SmartPolicy.can_see``.
        """
        if self.unrestricted:
            return None
        found: set[str] = set()
        for condition in self.conditions:
            if condition.patients is None:
                return None
            found |= condition.patients
        return frozenset(found)


UNRESTRICTED = Access((Condition(None),))


@dataclass(frozen=True, slots=True)
class Grants:
    """The validated content of an access token: who, in which context, with what scopes."""

    client_id: str
    scopes: tuple[Scope, ...]
    other_scopes: frozenset[str] = frozenset()
    subject: str | None = None
    fhir_user: str | None = None
    patient: str | None = None
    # Patients a user/ scope may reach; None: the user is not limited to some patients.
    user_patients: frozenset[str] | None = None
    token_id: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @classmethod
    def from_scope_string(
        cls,
        scope: str | None,
        client_id: str,
        *,
        subject: str | None = None,
        fhir_user: str | None = None,
        patient: str | None = None,
        user_patients: Iterable[str] | None = None,
        token_id: str | None = None,
    ) -> Grants:
        parsed: list[Scope] = []
        other: set[str] = set()
        for text in split_scopes(scope):
            one = parse_scope(text)
            if one is None:
                other.add(text)
            else:
                parsed.append(one)
        limited: frozenset[str] | None = (
            frozenset(user_patients) if user_patients is not None else None
        )
        if fhir_user and fhir_user.split("/")[-2:-1] == ["Patient"]:
            # A patient logged in as themselves: user/ scopes reach only their own record.
            limited = frozenset({fhir_user.rsplit("/", 1)[-1]})
        return cls(
            client_id=client_id,
            scopes=tuple(parsed),
            other_scopes=frozenset(other),
            subject=subject,
            fhir_user=fhir_user,
            patient=patient,
            user_patients=limited,
            token_id=token_id,
        )

    @property
    def scope_string(self) -> str:
        return " ".join(sorted([s.text for s in self.scopes] + list(self.other_scopes)))

    def _condition(self, scope: Scope) -> Condition | None:
        if scope.context == "patient":
            if self.patient is None:
                return None  # a patient/ scope without a patient in context grants nothing
            return Condition(frozenset({self.patient}), scope.query)
        if scope.context == "user":
            return Condition(self.user_patients, scope.query)
        return Condition(None, scope.query)

    def access(self, interaction: str, resource_type: str | None) -> Access | None:
        """What ``interaction`` on ``resource_type`` may reach, or ``None`` if refused.

        ``resource_type=None`` (system-level history or search) is allowed when some
        wildcard scope allows it; each resource is then checked on its own type.
        """
        letter = INTERACTION_PERMISSION.get(interaction)
        if letter is None:
            return None
        if resource_type in READ_ONLY_TYPES and letter in "cud":
            return None
        conditions: list[Condition] = []
        for scope in self.scopes:
            if letter not in scope.permissions:
                continue
            if resource_type is None:
                if scope.resource_type != "*":
                    continue
            elif not scope.covers_type(resource_type):
                continue
            condition = self._condition(scope)
            if condition is not None:
                conditions.append(condition)
        if not conditions:
            return None
        if any(c.unrestricted for c in conditions):
            return UNRESTRICTED
        return Access(tuple(dict.fromkeys(conditions)))

    def may_see_type(self, interaction: str, resource_type: str) -> bool:
        return self.access(interaction, resource_type) is not None
