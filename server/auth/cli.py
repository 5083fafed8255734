"""``billable clients|users|keys|launch|audit``: security administration on the configured store."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import hashlib
import json
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from server.audit.chain import AuditTrail
from server.auth.clients import RegistrationError, add_app_client, add_backend_client, add_user
from server.auth.keys import KeyRing
from server.auth.records import CLIENT, ISSUER_PIN, LAUNCH, USER, Records
from server.auth.setup import audit_seal, auth_origin
from server.auth.tokens import TokenIssuer
from server.repository import Repository
from server.repository.opened import opened

COMMANDS = ("clients", "users", "keys", "launch", "audit", "token")


def _store_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default=None, help="store URL (env BILLABLE_STORE)")


def add_commands(commands: Any) -> None:
    clients = commands.add_parser("clients", help="manage OAuth clients")
    csub = clients.add_subparsers(dest="action", required=True)
    add = csub.add_parser("add", help="register a backend service or an app")
    _store_arg(add)
    add.add_argument("client_id")
    add.add_argument("--kind", choices=("backend", "app"), required=True)
    add.add_argument("--scope", required=True, help='allowed scopes, e.g. "system/*.rs"')
    add.add_argument("--jwks", type=Path, help="backend/app: JWKS file with the public key(s)")
    add.add_argument("--jwks-url", help="backend: URL of the client's JWKS")
    add.add_argument("--redirect-uri", action="append", default=[], help="app: (repeatable)")
    add.add_argument(
        "--confidential", action="store_true", help="app: issue a client secret (shown once)"
    )
    add.add_argument("--name")
    add.add_argument(
        "--introspect",
        action="store_true",
        help="a resource server: may introspect tokens issued to other clients (RFC 7662)",
    )
    listing = csub.add_parser("list", help="list clients")
    _store_arg(listing)

    users = commands.add_parser("users", help="manage users of the login page")
    usub = users.add_subparsers(dest="action", required=True)
    uadd = usub.add_parser("add", help="add a user (password from BILLABLE_PASSWORD or a prompt)")
    _store_arg(uadd)
    uadd.add_argument("username")
    uadd.add_argument("--fhir-user", help="e.g. Practitioner/pr1 or Patient/p1")
    uadd.add_argument("--patient", action="append", help="a patient this user may open")
    ulist = usub.add_parser("list")
    _store_arg(ulist)

    keys = commands.add_parser("keys", help="signing keys of the embedded server")
    ksub = keys.add_subparsers(dest="action", required=True)
    rotate = ksub.add_parser("rotate", help="make a new signing key (old ones stay published)")
    _store_arg(rotate)

    launch = commands.add_parser("launch", help="make an EHR launch id for a patient")
    _store_arg(launch)
    launch.add_argument("--patient", required=True)

    token = commands.add_parser(
        "token",
        help="issue an access token from the embedded server's key (an administrator's"
        " shortcut for development and scripts)",
    )
    _store_arg(token)
    token.add_argument("--scope", default="system/*.cruds", help='default "system/*.cruds"')
    token.add_argument(
        "--base-url",
        default=None,
        help="the FHIR base URL the token is for (its audience); default: the server's"
        " configured or pinned base URL, else http://127.0.0.1:8080/fhir",
    )
    token.add_argument("--client", default="billable-admin-cli", help="client id in the token")
    token.add_argument("--patient", help="patient context (for patient/ scopes)")
    token.add_argument("--lifetime", type=int, default=3600, help="seconds (default 3600)")

    audit = commands.add_parser("audit", help="audit trail")
    asub = audit.add_subparsers(dest="action", required=True)
    verify = asub.add_parser("verify", help="check the hash chain of every AuditEvent")
    _store_arg(verify)
    verify.add_argument(
        "--audit-key-file",
        help="the chain's key file (env BILLABLE_AUDIT_KEY_FILE; default next to the store;"
        " BILLABLE_AUDIT_KEY: the key itself)",
    )


def _with_repository(url: str | None, work: Callable[[Repository], Awaitable[int]]) -> int:
    from server.config import Settings

    store_url = url or Settings.from_env().store_url

    async def run() -> int:
        async with opened(store_url) as repository:
            return await work(repository)

    return asyncio.run(run())


def run(args: argparse.Namespace) -> int:
    try:
        return _with_repository(args.store, lambda repository: _dispatch(args, repository))
    except RegistrationError as exc:
        print(f"billable: {exc}", file=sys.stderr)
        return 2


async def _token_base(records: Records, given: str | None) -> str:
    """The audience of an admin token: as given, configured, or the server's pinned base."""
    if given:
        return given.rstrip("/")
    if os.environ.get("BILLABLE_BASE_URL"):
        return os.environ["BILLABLE_BASE_URL"].rstrip("/")
    pinned = await records.get(ISSUER_PIN, "base")
    return str(pinned["base"]) if pinned else "http://127.0.0.1:8080/fhir"


async def _mark_introspector(records: Records, args: argparse.Namespace) -> None:
    """``--introspect``: the client is a resource server (server.auth.server.may_introspect)."""
    if not args.introspect:
        return
    client = await records.get(CLIENT, args.client_id)
    assert client is not None
    await records.put(CLIENT, args.client_id, {**client, "introspect": True})


async def _dispatch(args: argparse.Namespace, repository: Repository) -> int:
    records = Records(repository)
    if args.command == "clients" and args.action == "add":
        jwks = json.loads(args.jwks.read_text()) if args.jwks else None
        if args.kind == "backend":
            await add_backend_client(
                records,
                args.client_id,
                args.scope,
                jwks=jwks,
                jwks_url=args.jwks_url,
                name=args.name,
            )
            await _mark_introspector(records, args)
            print(f"backend client {args.client_id} registered")
            return 0
        _, secret = await add_app_client(
            records,
            args.client_id,
            args.scope,
            args.redirect_uri,
            confidential=args.confidential or jwks is not None,
            name=args.name,
            jwks=jwks,
        )
        await _mark_introspector(records, args)
        print(f"app client {args.client_id} registered")
        if secret:
            print(f"client secret (shown once, only its hash is stored): {secret}")
        return 0
    if args.command == "clients" and args.action == "list":
        for client in await records.list(CLIENT):
            print(f"{client['client_id']}\t{client['kind']}\t{' '.join(client['scopes'])}")
        return 0
    if args.command == "users" and args.action == "add":
        password = os.environ.get("BILLABLE_PASSWORD") or getpass.getpass("password: ")
        await add_user(
            records, args.username, password, fhir_user=args.fhir_user, patients=args.patient
        )
        print(f"user {args.username} added")
        return 0
    if args.command == "users" and args.action == "list":
        for user in await records.list(USER):
            print(f"{user['username']}\t{user.get('fhir_user') or ''}")
        return 0
    if args.command == "keys":
        kid = await KeyRing(records).rotate()
        print(f"new signing key {kid}")
        return 0
    if args.command == "launch":
        launch_id = secrets.token_urlsafe(24)
        await records.put(
            LAUNCH,
            hashlib.sha256(launch_id.encode()).hexdigest(),
            {"patient": args.patient, "exp": time.time() + 3600},
        )
        print(launch_id)
        return 0
    if args.command == "token":
        keys = KeyRing(records)
        await keys.load()
        base = await _token_base(records, args.base_url)
        issued = TokenIssuer(keys).access_token(
            issuer=auth_origin(base) + "/auth",
            audience=base,
            client_id=args.client,
            scope=args.scope,
            lifetime_s=args.lifetime,
            patient=args.patient,
        )
        print(issued.token)
        return 0
    if args.command == "audit":
        return await _verify_audit(repository, args)
    return 2


async def _verify_audit(repository: Repository, args: argparse.Namespace) -> int:
    """``billable audit verify``: one line per problem, exit status 1 if there is any."""
    from server.config import Settings

    settings = Settings.from_env(store_url=args.store, audit_key_file=args.audit_key_file)
    trail = AuditTrail(repository, audit_seal(settings, create=False))
    report = await trail.check()
    for problem in report.problems:
        print(problem)
    if report.problems:
        print(f"{len(report.problems)} problem(s) in {report.events} events")
        return 1
    unkeyed = f", {len(report.unkeyed)} written before keying" if report.unkeyed else ""
    lanes = f" in {len(report.lanes)} lanes" if len(report.lanes) > 1 else ""
    print(f"audit chain intact ({report.events} events{unkeyed}){lanes}")
    if len(report.lanes) > 1:  # one chain per process that appended (server.audit.lanes)
        for lane, events in report.lanes.items():
            print(f"  lane {lane}: {events} events")
    return 0
