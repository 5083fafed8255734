"""NDJSON output files of one job: appended page by page, split per type and by size.

The writer's state (files, counts, byte sizes) is part of the job's checkpoint. Resuming
truncates the open file back to the size recorded at the last checkpoint and removes any
file begun after it, so lines written after the checkpoint are not written twice.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import IO, Any


class NdjsonFiles:
    def __init__(self, directory: Path, max_bytes: int, files: list[dict[str, Any]]) -> None:
        self.directory = directory
        self.max_bytes = max(1, max_bytes)
        self.files = files  # the checkpoint's list, updated in place
        self._handle: IO[bytes] | None = None
        self._open_name: str | None = None

    def restore(self) -> None:
        """Make the directory match the checkpoint exactly."""
        self.directory.mkdir(parents=True, exist_ok=True)
        known = {f["name"]: f["bytes"] for f in self.files}
        for path in self.directory.iterdir():
            if path.name not in known:
                path.unlink()
            elif path.stat().st_size != known[path.name]:
                with path.open("r+b") as handle:
                    handle.truncate(known[path.name])

    def _current(self, rtype: str, size: int) -> tuple[dict[str, Any], IO[bytes]]:
        last = self.files[-1] if self.files else None
        if (
            last is None
            or last["type"] != rtype
            or (last["bytes"] > 0 and last["bytes"] + size > self.max_bytes)
        ):
            n = sum(1 for f in self.files if f["type"] == rtype) + 1
            last = {"type": rtype, "name": f"{rtype}-{n}.ndjson", "count": 0, "bytes": 0}
            self.files.append(last)
        if self._open_name != last["name"] or self._handle is None:
            self.close()
            self._handle = (self.directory / last["name"]).open("ab")
            self._open_name = last["name"]
        return last, self._handle

    def write_lines(self, rtype: str, lines: list[bytes]) -> None:
        """Append one NDJSON line per item (blocking: call it from a worker thread)."""
        for line in lines:
            data = line + b"\n"
            entry, handle = self._current(rtype, len(data))
            handle.write(data)
            entry["bytes"] += len(data)
            entry["count"] += 1

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle = None
        self._open_name = None

    def write_whole(self, name: str, lines: list[bytes]) -> int:
        """A small file written at once (the error file); its size."""
        data = b"".join(line + b"\n" for line in lines)
        path = self.directory / name
        path.write_bytes(data)
        os.chmod(path, 0o600)
        return len(data)


def remove_directory(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
