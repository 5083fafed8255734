"""Password and client-secret hashing with scrypt (hashlib), in a self-describing format."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# RFC 7914 parameters; n=2**14, r=8 costs ~16 MiB and tens of milliseconds per check.
_N, _R, _P = 2**14, 8, 1


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    encoded_salt = base64.b64encode(salt).decode()
    return f"scrypt${_N}${_R}${_P}${encoded_salt}${base64.b64encode(digest).decode()}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = base64.b64decode(digest)
    actual = hashlib.scrypt(
        secret.encode(),
        salt=base64.b64decode(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=len(expected),
    )
    return hmac.compare_digest(actual, expected)
