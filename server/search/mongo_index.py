"""The search index sub-document stored with each current MongoDB version document.

MongoDB and FerretDB (the test server) agree on equality, ``$in``/``$nin``, anchored
``$regex`` and single-operator comparisons on arrays; FerretDB implements neither
``$elemMatch`` with field conditions nor ``$lookup``, and applies the two bounds of a
scalar ``$elemMatch`` to possibly different elements. So the index is laid out so that
nearly every criterion is *one* operator on *one* array:

``idx.k``        equality keys: tokens (``t|p|c|code``, ``t|p|sc|system|code``,
                 ``t|p|nc|code`` without system, ``t|p|s|system``), exact strings
                 (``x|p|text``), references (``r|p|Type/id``, ``r|p|*|id``, ``u|p|url``),
                 uris (``u|p|uri``), composite token pairs, presence (``h|p``, ``:missing``);
``idx.s``        ``p|normalised`` strings and ``p|uri``: starts-with and ``:below`` are an
                 anchored ``$regex`` (an index prefix scan on MongoDB);
``idx.dl.<f>``   ``enc(lo)`` and ``idx.dh.<f>`` ``enc(hi)`` of each date range (epoch µs);
``idx.n.<f>``    ``enc(value)`` of numbers and quantities;
                 where ``<f>`` is the parameter code, or ``<p>~<hash>`` for the values of a
                 quantity with a given unit (``hash(code)``, ``hash(system|code)``) and of a
                 composite under its first (token) component (``field_name``);
``idx.oa`` / ``idx.od``  ``{p: sort key}`` (smallest / largest value) for ``_sort``.

``enc`` maps a float to 16 hex digits that sort like the number, so numeric ranges are
string comparisons; ``|`` stands for the unit separator ``\\x1f``. Per-parameter fields
make one-sided comparisons (date ge/le/gt/lt/sa/eb, number gt/lt/ge/le) exact on every
server. Two-sided ones (date eq/ne/ap, number eq/ap, a quantity with a unit) use a
scalar ``$elemMatch``: exact on MongoDB; on FerretDB, and for dates everywhere (the two
bounds of a date live in two arrays), a resource with *several* values for the same
parameter may match across two of them (documented in docs/search.md).
MongoDB indexes them with wildcard indexes (``idx.dl.$**``...), see ``INDEXES``.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

from server.storage.port import SearchIndex

SEP = "\x1f"
HIGH = "\U0010ffff"

# Indexes ``MongoStore`` creates on its versions collection: (name, keys, wildcard).
# Wildcard indexes need MongoDB >= 4.2; a server without them (FerretDB) skips them.
INDEXES: list[tuple[str, list[tuple[str, int]], bool]] = [
    ("search_keys", [("type", 1), ("idx.k", 1)], False),
    ("search_strings", [("type", 1), ("idx.s", 1)], False),
    ("search_date_lo", [("idx.dl.$**", 1)], True),
    ("search_date_hi", [("idx.dh.$**", 1)], True),
    ("search_numbers", [("idx.n.$**", 1)], True),
    ("search_sort_asc", [("idx.oa.$**", 1)], True),
    ("search_sort_desc", [("idx.od.$**", 1)], True),
]


def enc(value: float) -> str:
    """A float as 16 hex digits that sort in numeric order."""
    if value == 0:
        value = 0.0
    (bits,) = struct.unpack(">Q", struct.pack(">d", float(value)))
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | (1 << 63)
    return f"{bits:016x}"


def field_name(param: str, *qualifiers: str | None) -> str:
    """The per-parameter field of a number/date value qualified by unit or composite head."""
    if not qualifiers:
        return param
    digest = hashlib.sha1(key(*qualifiers).encode()).hexdigest()[:12]
    return f"{param}~{digest}"


def key(*parts: str | None) -> str:
    return SEP.join("" if p is None else p for p in parts)


def token_keys(param: str, system: str | None, code: str) -> list[str]:
    keys = [key("t", param, "c", code)]
    if system is None:
        keys.append(key("t", param, "nc", code))
    else:
        keys.append(key("t", param, "sc", system, code))
        keys.append(key("t", param, "s", system))
    return keys


def reference_keys(param: str, rtype: str | None, rid: str | None, url: str | None) -> list[str]:
    keys = []
    if rid is not None:
        keys.append(key("r", param, "*", rid))
        if rtype is not None:
            keys.append(key("r", param, f"{rtype}/{rid}"))
    if url is not None:
        keys.append(key("u", param, url))
    return keys


def _add(field: dict[str, dict[str, None]], param: str, value: str) -> None:
    field.setdefault(param, {})[value] = None


def _sort(oa: dict[str, Any], od: dict[str, Any], param: str, low: str, high: str) -> None:
    if param not in oa or low < oa[param]:
        oa[param] = low
    if param not in od or high > od[param]:
        od[param] = high


def index_document(index: SearchIndex) -> dict[str, Any]:
    """The ``idx`` sub-document of one version (store it only on current versions)."""
    k: dict[str, None] = {}
    s: dict[str, None] = {}
    dl: dict[str, dict[str, None]] = {}
    dh: dict[str, dict[str, None]] = {}
    n: dict[str, dict[str, None]] = {}
    oa: dict[str, Any] = {}
    od: dict[str, Any] = {}
    for param, system, code in index.tokens:
        k.update(dict.fromkeys(token_keys(param, system, code)))
        k[key("h", param)] = None
        _sort(oa, od, param, code, code)
    for param, norm, exact in index.strings:
        s[key(param, norm)] = None
        k[key("x", param, exact)] = None
        k[key("h", param)] = None
        _sort(oa, od, param, norm, norm)
    for param, rtype, rid, url in index.references:
        k.update(dict.fromkeys(reference_keys(param, rtype, rid, url)))
        k[key("h", param)] = None
        ref = f"{rtype}/{rid}" if rtype else (url or "")
        _sort(oa, od, param, ref, ref)
    for param, lo, hi in index.dates:
        _add(dl, param, enc(lo))
        _add(dh, param, enc(hi))
        k[key("h", param)] = None
        _sort(oa, od, param, enc(lo), enc(hi))
    for param, value in index.numbers:
        _add(n, param, enc(value))
        k[key("h", param)] = None
        _sort(oa, od, param, enc(value), enc(value))
    for param, q_system, q_code, value in index.quantities:
        _add(n, param, enc(value))
        if q_code is not None:
            _add(n, field_name(param, q_code), enc(value))
            if q_system is not None:
                _add(n, field_name(param, q_system, q_code), enc(value))
        k[key("h", param)] = None
        _sort(oa, od, param, enc(value), enc(value))
    for param, uri in index.uris:
        k[key("u", param, uri)] = None
        s[key(param, uri)] = None
        k[key("h", param)] = None
        _sort(oa, od, param, uri, uri)
    for param, parts in index.composites:
        k[key("h", param)] = None
        if len(parts) != 2 or parts[0].c is None:
            continue  # MongoDB composites: token first, two components (all R4 but one)
        second = parts[1]
        for head in token_keys("", parts[0].s, parts[0].c):
            if second.lo is not None and second.hi is not None and second.lo == second.hi:
                value_key = enc(second.lo)  # quantity or number
                _add(n, field_name(param, head), value_key)
                if second.c is not None:
                    _add(n, field_name(param, head, second.c), value_key)
                    if second.s is not None:
                        _add(n, field_name(param, head, second.s, second.c), value_key)
            elif second.lo is not None and second.hi is not None:  # date
                _add(dl, field_name(param, head), enc(second.lo))
                _add(dh, field_name(param, head), enc(second.hi))
            elif second.c is not None:  # token, string, reference, uri
                for sk in token_keys("", second.s, second.c):
                    k[key("cp", param, head, sk)] = None
                s[key(field_name(param, head), second.c)] = None

    def lists(field: dict[str, dict[str, None]]) -> dict[str, list[str]]:
        return {p: list(values) for p, values in field.items()}

    return {
        "k": list(k),
        "s": list(s),
        "dl": lists(dl),
        "dh": lists(dh),
        "n": lists(n),
        "oa": oa,
        "od": od,
    }
