"""What every official-release loader shares: reading the bytes CMS publishes, the facts
recorded about a release file (name, SHA-256, row count), and the table's ``Meta``.
"""

from __future__ import annotations

import gzip
import hashlib
from datetime import date
from pathlib import Path
from typing import Any

from terminology.model import Meta
from terminology.systems import BILLABLE_BASE


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes; a ``.gz`` copy is read as the file it compresses."""
    raw = Path(path).read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def read_text(path: str | Path) -> str:
    raw = read_bytes(path)
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def file_facts(path: str | Path, rows: int) -> dict[str, Any]:
    """Recorded in the compiled table and its index row: which file, which bytes, how many."""
    data = read_bytes(path)
    name = Path(path).name
    return {
        "source_file": name[:-3] if name.endswith(".gz") else name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "rows": rows,
    }


def release_meta(
    kind: str,
    name: str,
    version: str,
    start: date,
    end: date | None,
    source: str,
    description: str = "",
    official: tuple[date, date | None] | None = None,
) -> dict[str, Any]:
    meta = Meta(
        url=f"{BILLABLE_BASE}/{kind}",
        version=version,
        name=name,
        title=f"{name} {version}",
        effective_from=start,
        effective_to=end,
        source=source,
        publisher="CMS",
        description=description,
        license="Public domain (US Government work); CPT codes (c) AMA, numbers only",
    )
    data = meta.to_json()
    if official is not None and (official[0], official[1]) != (start, end):
        data["official_from"] = official[0].isoformat()
        data["official_to"] = official[1].isoformat() if official[1] else None
    return data
