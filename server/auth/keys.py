"""The embedded authorization server's signing keys: persisted, rotated, published as JWKS.

Keys live in the store (``x-billable-signing-key`` records), so a restart — or a second
server process on the same store — keeps validating the tokens already issued. The newest
key signs; older keys stay published until every token they signed has expired.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from joserfc.jwk import KeySet, RSAKey

from server.auth.records import SIGNING_KEY, Records

log = logging.getLogger("billable.auth.keys")

SIGNING_ALG = "RS256"  # what OpenID Connect requires every relying party to accept
DAY = 86400


class KeyRing:
    def __init__(
        self,
        records: Records,
        rotate_after_s: int = 30 * DAY,
        keep_after_rotation_s: int = 2 * DAY,
    ) -> None:
        self.records = records
        self.rotate_after_s = rotate_after_s
        self.keep_after_rotation_s = keep_after_rotation_s
        self._keys: list[tuple[float, RSAKey]] = []  # (created, key), newest first
        self._lock = asyncio.Lock()
        self._last_reload = 0.0

    async def load(self) -> None:
        """Read the keys; make the first one, or a fresh one when the newest is too old."""
        async with self._lock:
            await self._read()
            if not self._keys or time.time() - self._keys[0][0] > self.rotate_after_s:
                await self._generate()
                await self._read()

    async def rotate(self) -> str:
        async with self._lock:
            kid = await self._generate()
            await self._read()
            return kid

    async def reload_if_stale(self, min_interval_s: float = 5.0) -> bool:
        """Re-read keys (another process may have rotated); at most every few seconds."""
        if time.monotonic() - self._last_reload < min_interval_s:
            return False
        async with self._lock:
            await self._read()
        return True

    async def _generate(self) -> str:
        kid = f"billable-{time.strftime('%Y%m%d')}-{uuid.uuid4().hex[:8]}"
        key = RSAKey.generate_key(2048, parameters={"kid": kid, "alg": SIGNING_ALG, "use": "sig"})
        record = {"kid": kid, "created": time.time(), "jwk": key.as_dict(private=True)}
        await self.records.put(SIGNING_KEY, kid, record)
        log.info("generated signing key %s", kid)
        return kid

    async def _read(self) -> None:
        now = time.time()
        rows = sorted(await self.records.list(SIGNING_KEY), key=lambda r: -float(r["created"]))
        keys: list[tuple[float, RSAKey]] = []
        for index, row in enumerate(rows):
            created = float(row["created"])
            # A key is kept while a newer key is younger than the grace period.
            if index > 0 and now - float(rows[index - 1]["created"]) > self.keep_after_rotation_s:
                break
            keys.append((created, RSAKey.import_key(row["jwk"])))
        self._keys = keys
        self._last_reload = time.monotonic()

    @property
    def signing_key(self) -> RSAKey:
        if not self._keys:
            raise RuntimeError("signing keys are not loaded")
        return self._keys[0][1]

    @property
    def keyset(self) -> KeySet:
        return KeySet([k for _, k in self._keys])

    def public_jwks(self) -> dict[str, Any]:
        keys = []
        for _, key in self._keys:
            public: dict[str, Any] = dict(key.as_dict(private=False))
            public.update({"kid": key.kid, "alg": SIGNING_ALG, "use": "sig"})
            keys.append(public)
        return {"keys": keys}
