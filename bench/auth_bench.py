"""Security figures: token issue rate, and what token validation + audit cost per request.

Runs real ``billable serve`` processes on loopback (embedded SQLite store) and prints:

- token issue rate of the embedded authorization server (client_credentials with a fresh
  RS384 private_key_jwt assertion each time, sequential requests over HTTP), and the
  in-process signing rate of access tokens;
- throughput of the same read workload (GET of one Claim, ``--clients`` concurrent
  connections) with ``--auth off`` and with ``--auth smart`` (bearer token validated,
  scope policy, one hash-chained AuditEvent written per request), and the difference per
  request.

Usage: ``.venv/bin/python -m bench.auth_bench [--requests N] [--clients C]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from bench._server import running_server

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _assertion(key: RSAKey, token_url: str) -> str:
    claims = {
        "iss": "bench",
        "sub": "bench",
        "aud": token_url,
        "exp": int(time.time()) + 240,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode({"alg": "RS384", "kid": key.kid}, claims, key, algorithms=["RS384"])


def _token(http: httpx.Client, base: str, key: RSAKey, scope: str) -> str:
    r = http.post(
        f"{base}/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": _assertion(key, f"{base}/auth/token"),
        },
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


async def _load(url: str, headers: dict[str, str], requests: int, clients: int) -> float:
    """Requests per second for ``requests`` GETs spread over ``clients`` connections."""
    per_client = requests // clients

    async def worker(http: httpx.AsyncClient) -> None:
        for _ in range(per_client):
            r = await http.get(url, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"{r.status_code}: {r.text[:200]}")

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        await worker(http)  # warm-up and sanity check (one pass of one worker)
        start = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return per_client * clients / elapsed


def _claim() -> dict[str, object]:
    return {
        "resourceType": "Claim",
        "id": "bench-claim",
        "status": "active",
        "type": {"coding": [{"code": "professional"}]},
        "use": "claim",
        "patient": {"reference": "Patient/p1"},
        "created": "2026-11-02",
        "provider": {"reference": "Organization/o1"},
        "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/c1"}}],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=300)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{Path(tmp) / 'bench.db'}"
        key = RSAKey.generate_key(2048, parameters={"kid": "bench"})
        jwks = Path(tmp) / "bench.jwks.json"
        jwks.write_text(json.dumps(KeySet([key]).as_dict(private=False)))
        subprocess.run(
            [
                sys.executable,
                "-m",
                "server.cli",
                "clients",
                "add",
                "bench",
                "--kind",
                "backend",
                "--jwks",
                str(jwks),
                "--scope",
                "system/*.cruds",
                "--store",
                store,
            ],
            check=True,
            capture_output=True,
        )

        print(f"auth bench: {args.requests} reads x {args.clients} connections, SQLite store")
        with running_server(store, ("--auth", "smart")) as (base, _pid):
            with httpx.Client(timeout=30) as http:
                token = _token(http, base, key, "system/*.cruds")
                headers = {"Authorization": f"Bearer {token}"}
                r = http.put(
                    f"{base}/fhir/Claim/bench-claim",
                    json=_claim(),
                    headers={**headers, "Content-Type": "application/fhir+json"},
                )
                r.raise_for_status()
                start = time.perf_counter()
                for _ in range(args.tokens):
                    _token(http, base, key, "system/*.rs")
                issue_rate = args.tokens / (time.perf_counter() - start)
            smart_rps = asyncio.run(
                _load(f"{base}/fhir/Claim/bench-claim", headers, args.requests, args.clients)
            )

        with running_server(store, ("--auth", "off")) as (base, _pid):
            off_rps = asyncio.run(
                _load(f"{base}/fhir/Claim/bench-claim", {}, args.requests, args.clients)
            )

    from server.auth.keys import KeyRing
    from server.auth.tokens import TokenIssuer

    ring = KeyRing(None)  # type: ignore[arg-type]
    signing = RSAKey.generate_key(2048, parameters={"kid": "k"})
    ring._keys = [(time.time(), signing)]
    issuer = TokenIssuer(ring)
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        issuer.access_token(
            issuer="https://x/auth",
            audience="https://x/fhir",
            client_id="c",
            scope="system/*.rs",
            lifetime_s=300,
        )
    sign_rate = n / (time.perf_counter() - start)

    print(f"token issue rate (HTTP, client_credentials + RS384 assertion): {issue_rate:8.0f} /s")
    print(f"access token signing (in process, RS256):                      {sign_rate:8.0f} /s")
    print(f"reads/s with --auth off:                                       {off_rps:8.0f}")
    print(f"reads/s with --auth smart (validate + policy + audit):         {smart_rps:8.0f}")
    overhead_ms = (1 / smart_rps - 1 / off_rps) * 1000
    print(
        f"overhead per request: {overhead_ms:.2f} ms of server time "
        f"({(1 - smart_rps / off_rps) * 100:.0f}% less throughput)"
    )


if __name__ == "__main__":
    main()
