"""A service line while the claim is being built (before pricing and the Claim JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(slots=True)
class Line:
    code: str
    system: str
    display: str
    day: date
    quantity: int = 1
    modifiers: list[str] = field(default_factory=list)
    dx: list[str] = field(default_factory=list)  # preferred diagnosis codes, in order
    sources: list[str] = field(default_factory=list)
    em: bool = False
    preventive: bool = False
    revenue: str | None = None
    removed: bool = False
    unit_price: float | None = None
    addon: bool = False  # an add-on of the E/M (prolonged services): points like the E/M
