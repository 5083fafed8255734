"""``billable x12 837 [--since DATE] [--payer ID] OUT`` and ``billable x12 import FILE...``.

``837`` writes one interchange file per payer and claim kind into the directory OUT for
every active claim not yet sent as it is now (a changed one goes as a replacement, a
cancelled one that was sent as a void), then records them as sent; claims that cannot
make a valid 837 are listed with each missing element, and are not sent. ``import``
posts 835 remittances and records 999/277CA acknowledgements; an invalid file is
refused whole, naming the segment and element. Both act as the ``billable-x12`` system
client through the repository, like the server's own engines.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path

from server.config import Settings
from server.errors import FhirError
from server.repository import system_context
from server.repository.opened import opened
from server.storage.factory import StoreUrlError
from server.storage.port import StoreUnavailable
from server.x12.inbound import import_x12
from server.x12.outbound import BatchResult, X12Out

CLIENT = "billable-x12"


def add_x12_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="x12_command", required=True)
    out = commands.add_parser("837", help="write 837P/837I batches of the claims to send")
    out.add_argument("out", type=Path, help="directory for the interchange files")
    out.add_argument("--store", help="sqlite:///PATH or mongodb://... (env BILLABLE_STORE)")
    out.add_argument("--since", help="only claims created on or after this date (YYYY-MM-DD)")
    out.add_argument(
        "--payer", action="append", default=[], help="only this payer (id or name; repeatable)"
    )
    inbound = commands.add_parser("import", help="post 835s, record 999/277CA acknowledgements")
    inbound.add_argument("files", nargs="+", type=Path)
    inbound.add_argument("--store", help="sqlite:///PATH or mongodb://... (env BILLABLE_STORE)")


def _file_name(kind: str, payer: str, control: int) -> str:
    safe = re.sub(r"[^A-Za-z0-9]+", "-", payer).strip("-")[:40] or "payer"
    return f"{kind}-{safe}-{control:09d}.x12"


def batch_summary(result: BatchResult) -> str:
    sent = sum(len(d.claims) for d in result.documents)
    lines = [
        f"billable x12 837: {sent} claim(s) in {len(result.documents)} file(s);"
        f" {len(result.unchanged)} already sent unchanged; {len(result.refused)} refused;"
        f" {len(result.not_billable)} without an 837 form"
    ]
    for report in result.refused:
        for missing in report.missing:
            lines.append(f"  refused Claim/{report.claim_id}: missing {missing.message()}")
    for claim_id, why in result.not_billable:
        lines.append(f"  not sent Claim/{claim_id}: {why}")
    return "\n".join(lines)


async def write_batch(
    settings: Settings, out_dir: Path, since: str | None, payers: list[str]
) -> BatchResult:
    async with opened(settings.store_url) as repo:
        ctx = system_context(CLIENT)
        out = X12Out(repo, settings)
        result = await out.batch(ctx, since, payers)
        written = await asyncio.to_thread(_write_files, out_dir, result)
        try:
            await out.record(result)
        except BaseException:
            # Not recorded as sent: do not leave files behind that would be sent.
            await asyncio.to_thread(_remove, written)
            raise
        for path in written:
            print(path)
        return result


def _write_files(out_dir: Path, result: BatchResult) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for doc in result.documents:
            path = out_dir / _file_name(doc.kind, doc.payer, doc.control_number)
            path.write_text(doc.text, encoding="ascii")
            written.append(path)
    except BaseException:
        _remove(written)
        raise
    return written


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


async def import_files(settings: Settings, files: list[Path]) -> int:
    failed = 0
    async with opened(settings.store_url) as repo:
        ctx = system_context(CLIENT)
        for path in files:
            try:
                text = await asyncio.to_thread(path.read_text, encoding="ascii")
                result = await import_x12(repo, ctx, text)
            except (FhirError, UnicodeDecodeError, OSError) as exc:
                failed += 1
                print(f"{path}: not imported: {exc}", file=sys.stderr)
                continue
            for issue in result.outcome()["issue"]:
                print(f"{path}: {issue['severity']}: {issue['diagnostics']}")
    return 1 if failed else 0


def x12_command(args: argparse.Namespace) -> int:
    settings = Settings.from_env(store_url=args.store)
    try:
        if args.x12_command == "837":
            result = asyncio.run(write_batch(settings, args.out, args.since, args.payer))
            print(batch_summary(result), file=sys.stderr)
            return 0
        return asyncio.run(import_files(settings, args.files))
    except (StoreUrlError, StoreUnavailable) as exc:
        print(f"billable: cannot use store {settings.store_url}: {exc}", file=sys.stderr)
        return 1
