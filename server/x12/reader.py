"""Reading inbound X12 with pyx12: validation against the implementation guide, then the
segments as plain values.

pyx12 (BSD) walks the guide's map for the version in GS08, so a file is checked against
005010X221A1 (835), X231A1 (999) or X214 (277CA) before anything is posted; its errors
name the segment (id and position) and the element, and become the OperationOutcome of
a 400. The same validation checks Billable's own 837s in the tests.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pyx12.errors
import pyx12.params
import pyx12.x12file
import pyx12.x12n_document

from server.errors import FhirError, Issue

log = logging.getLogger("billable.x12")
# pyx12 logs what it also reports; the reports become OperationOutcomes, not log noise.
logging.getLogger("pyx12").addHandler(logging.NullHandler())


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation error: where (segment id, its position in the file, element) and what."""

    segment: str | None
    position: int | None  # segment count from ISA (1-based)
    element: str | None  # e.g. CLP02, SVC01-2
    code: str
    message: str
    value: str | None = None

    def text(self) -> str:
        where = " ".join(
            p
            for p in (
                f"segment {self.segment}" if self.segment else None,
                f"#{self.position}" if self.position else None,
                f"element {self.element}" if self.element else None,
            )
            if p
        )
        found = f" (value {self.value!r})" if self.value else ""
        return f"{where}: {self.message}{found}" if where else self.message


def _params() -> pyx12.params.ParamsBase:
    # The base parameters only: pyx12's Unix variant also reads ~/.pyx12.conf.xml, which
    # would make validation depend on the machine.
    return pyx12.params.ParamsBase()


# pyx12's loggers are process-wide: one validation at a time collects its own messages.
_VALIDATING = threading.Lock()


def validate(text: str) -> list[Problem]:
    """Every error pyx12 finds in ``text`` (empty: valid against its guide). CPU-bound:
    the server calls it in a worker thread (``asyncio.to_thread``)."""
    with _VALIDATING:
        return _validate(text)


def _validate(text: str) -> list[Problem]:
    out = io.StringIO()
    logged = _Collect()
    pyx12_log = logging.getLogger("pyx12")
    pyx12_log.addHandler(logged)
    try:
        # pyx12 only logs the errors it cannot attach to a segment (GS elements, a missing
        # ST loop): they are collected and reported too.
        ok = pyx12.x12n_document.x12n_document(
            _params(), io.StringIO(text), fd_997=None, fd_html=None, fd_json=out
        )
    except pyx12.errors.EngineError as exc:
        return [Problem(None, None, None, "engine", str(exc))]
    finally:
        pyx12_log.removeHandler(logged)
    raw = out.getvalue()
    if not raw:
        # pyx12 could not read it as X12 at all (it logs why): name what we can see.
        return [Problem("ISA", 1, None, "isa", _not_x12(text))]
    problems = list(_problems(json.loads(raw)))
    reported = {p.message for p in problems}
    problems += [
        p
        for p in _printed(logged.lines)
        if not any(p.message.startswith(r) or r.startswith(p.message) for r in reported)
    ]
    if not ok and not problems:
        problems.append(Problem(None, None, None, "invalid", "pyx12 rejected the document"))
    return problems


def _not_x12(text: str) -> str:
    start = text.lstrip()[:3]
    if start != "ISA":
        return f"an X12 interchange starts with an ISA segment, not {start!r}"
    return "the ISA segment must be 106 characters with ISA12 00501 (fixed-width fields)"


_PRINTED = re.compile(r"Line:(\d+) (?:SEG|ELE):(\d+) - (.*)")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _printed(lines: list[str]) -> Iterator[Problem]:
    for line in lines:
        found = _PRINTED.search(line)
        if found:
            message = found.group(3)
            ref = re.search(r"\(([A-Z0-9]{2,3}\d\d(?:-\d+)?)\)", message)
            element = ref.group(1) if ref else None
            split = re.fullmatch(r"([A-Z0-9]{2,3})\d\d(?:-\d+)?", element) if element else None
            segment = split.group(1) if split else None
            yield Problem(segment, int(found.group(1)), element, "printed", message)


def _problems(doc: dict[str, object]) -> Iterator[Problem]:
    def errors(node: dict[str, object]) -> list[dict[str, object]]:
        found = node.get("errors") or []
        return found if isinstance(found, list) else []

    for isa in doc.get("interchanges") or []:  # type: ignore[attr-defined]
        for e in errors(isa):
            yield Problem("ISA", None, None, str(e["err_cde"]), str(e["err_str"]))
        for gs in isa.get("groups") or []:
            for e in errors(gs):
                yield Problem("GS", None, None, str(e["err_cde"]), str(e["err_str"]))
            for st in gs.get("transactions") or []:
                for e in errors(st):
                    yield Problem("ST", None, None, str(e["err_cde"]), str(e["err_str"]))
                for seg in st.get("segments") or []:
                    sid, count = seg.get("seg_id"), seg.get("seg_count")
                    for e in seg.get("errors") or []:
                        yield Problem(
                            sid, count, None, str(e["err_cde"]), str(e["err_str"]), e.get("err_val")
                        )
                    for ele in seg.get("elements") or []:
                        ref = f"{sid}{int(ele['ele_pos']):02d}"
                        if ele.get("subele_pos"):
                            ref += f"-{int(ele['subele_pos'])}"
                        for e in ele.get("errors") or []:
                            yield Problem(
                                sid,
                                count,
                                ref,
                                str(e["err_cde"]),
                                str(e["err_str"]),
                                e.get("err_val"),
                            )


def invalid(problems: list[Problem], what: str = "The X12 document") -> FhirError:
    """A 400 naming each problem's segment and element; nothing was posted."""
    issues = [
        Issue(
            "error",
            "structure",
            f"{what} is not valid X12 5010: {p.text()}; nothing was posted",
            (f"{p.element or p.segment or 'ISA'}",),
        )
        for p in problems[:50]
    ]
    return FhirError(400, issues)


@dataclass(frozen=True, slots=True)
class Seg:
    """One segment: ``seg["CLP02"]``, ``seg["SVC01-2"]`` (empty string when absent)."""

    id: str
    raw: pyx12.segment.Segment
    position: int

    def __getitem__(self, ref: str) -> str:
        value = self.raw.get_value(ref)
        return value or ""

    def element(self, n: int) -> str:
        return self[f"{self.id}{n:02d}"]


def segments(text: str) -> list[Seg]:
    """The segments of ``text`` in order (call ``validate`` first)."""
    try:
        reader = pyx12.x12file.X12Reader(io.StringIO(text))
    except pyx12.errors.X12Error as exc:
        raise FhirError.of(400, "structure", f"Not an X12 interchange: {exc}") from exc
    out: list[Seg] = []
    for n, seg in enumerate(reader, start=1):
        out.append(Seg(str(seg.get_seg_id()), seg, n))
    return out
