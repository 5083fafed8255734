"""The ``billable`` command line."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import sys
from collections.abc import Sequence

from server.config import AUTH_MODES, Settings
from server.repository.opened import opened
from server.storage.factory import StoreUrlError
from server.storage.port import StoreUnavailable

UNAUTHENTICATED_WARNING = (
    "WARNING: authentication is OFF (--auth off). Anyone who can reach {url} can read and"
    " change every resource. Use only on a trusted machine with synthetic data."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="billable", description="Billable FHIR R4 server")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the FHIR server")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--store", help="sqlite:///PATH or mongodb://... (env BILLABLE_STORE)", default=None
    )
    serve.add_argument(
        "--auth", help="smart (default) or off, loopback only (env BILLABLE_AUTH)", default=None
    )
    serve.add_argument("--issuer", help="trust this external OAuth2 issuer (env BILLABLE_ISSUER)")
    serve.add_argument("--jwks-url", help="the external issuer's JWKS URL")
    serve.add_argument("--cors-origin", action="append", help="allowed browser origin")
    serve.add_argument("--rate-limit", type=int, help="requests per minute per client")
    serve.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    serve.add_argument("--tls-key", help="the certificate's private key (PEM)")
    serve.add_argument(
        "--base-url",
        help="public FHIR base URL: the issuer and token audience (env BILLABLE_BASE_URL;"
        " default: the first one requested, then pinned)",
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        help="address of a reverse proxy whose X-Forwarded-For/-Proto are believed"
        " (repeatable; env BILLABLE_TRUSTED_PROXIES; default: none)",
    )
    serve.add_argument(
        "--audit-key-file",
        help="HMAC key of the audit chain (env BILLABLE_AUDIT_KEY_FILE; default next to"
        " the SQLite file, ./data/audit-<db>.key for MongoDB)",
    )
    serve.add_argument(
        "--export-dir", help="where $export files go (env BILLABLE_EXPORT_DIR; ./data/export)"
    )
    serve.add_argument(
        "--coding",
        choices=("auto", "manual"),
        help="generate Claims when a finished Encounter is written (default auto;"
        " env BILLABLE_CODING)",
    )
    serve.add_argument(
        "--timely-filing-days",
        type=int,
        help="automatic coding codes only encounters at most this many days old"
        " (default 365; 0 = no limit; env BILLABLE_TIMELY_FILING_DAYS)",
    )
    serve.add_argument(
        "--adjudication",
        choices=("auto", "manual"),
        help="adjudicate clean generated claims at once (auto, default) or only on"
        " Claim/$submit (manual) (env BILLABLE_ADJUDICATION)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("BILLABLE_WORKERS", "1")),
        help="server processes sharing the port and the store (env BILLABLE_WORKERS;"
        " default 1; docs/performance.md#workers)",
    )
    serve.add_argument("--log-level", default="info")
    reindex = commands.add_parser("reindex", help="rebuild the search index of every resource")
    reindex.add_argument("--store", help="sqlite:///PATH or mongodb://... (env BILLABLE_STORE)")
    reindex.add_argument("--type", action="append", help="only this resource type (repeatable)")
    from server.bundles.loader import add_load_arguments

    add_load_arguments(
        commands.add_parser("load", help="load Bundle (JSON) and NDJSON files into the store")
    )
    from server.feeds.synthea import add_feed_arguments

    add_feed_arguments(
        commands.add_parser("feed", help="turn an EHR export into a feed (feed synthea IN OUT)")
    )
    from server.coding_cli import add_code_arguments

    add_code_arguments(
        commands.add_parser("code", help="code stored encounters (claims, then adjudication)")
    )
    from server.x12.cli import add_x12_arguments

    add_x12_arguments(commands.add_parser("x12", help="837 batches out, 835/999/277CA in"))
    from server.auth.cli import add_commands

    add_commands(commands)
    commands.add_parser(
        "terminology",
        help="load or list terminology releases (billable terminology --help)",
        add_help=False,
    )
    return parser


def reindex_command(args: argparse.Namespace) -> int:
    """Re-extract every current resource's search index values (after an upgrade)."""
    settings = Settings.from_env(store_url=args.store)

    async def run() -> int:
        async with opened(settings.store_url) as repo:
            return await repo.reindex(
                tuple(args.type or ()),
                progress=lambda n: print(f"\rreindexed {n}", end="", file=sys.stderr),
            )

    try:
        done = asyncio.run(run())
    except (StoreUrlError, StoreUnavailable) as exc:
        print(f"billable: cannot use store {settings.store_url}: {exc}", file=sys.stderr)
        return 1
    print(f"\nbillable: reindexed {done} resources", file=sys.stderr)
    return 0


def _check_store(url: str) -> None:
    """Open and close the store once, so a bad URL or a dead server fails fast and clearly."""

    async def probe() -> None:
        async with opened(url):
            pass

    asyncio.run(probe())


def serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env(
        store_url=args.store,
        auth=args.auth or os.environ.get("BILLABLE_AUTH") or "smart",
        preload_terminology=True,
        host=args.host,
        port=args.port,
        base_url=args.base_url,
        trusted_proxies=tuple(args.trusted_proxy) if args.trusted_proxy else None,
        audit_key_file=args.audit_key_file,
        issuer=args.issuer,
        jwks_url=args.jwks_url,
        cors_origins=tuple(args.cors_origin) if args.cors_origin else None,
        rate_limit_per_minute=args.rate_limit,
        export_dir=args.export_dir,
        coding=args.coding or os.environ.get("BILLABLE_CODING") or "auto",
        timely_filing_days=args.timely_filing_days,
        adjudication=args.adjudication or os.environ.get("BILLABLE_ADJUDICATION") or "auto",
    )
    if settings.auth not in AUTH_MODES:
        print(
            f"billable: --auth {settings.auth!r} is not available; modes: {', '.join(AUTH_MODES)}",
            file=sys.stderr,
        )
        return 2
    if settings.auth == "off" and not _is_loopback(settings.host):
        print(
            f"billable: --auth off is allowed only on a loopback host, not {settings.host!r}",
            file=sys.stderr,
        )
        return 2
    try:
        _check_store(settings.store_url)
    except (StoreUrlError, StoreUnavailable) as exc:
        print(f"billable: cannot use store {settings.store_url}: {exc}", file=sys.stderr)
        return 1
    scheme = "https" if args.tls_cert else "http"
    url = f"{scheme}://{settings.host}:{settings.port}/fhir"
    if settings.auth == "off":
        print(UNAUTHENTICATED_WARNING.format(url=url), file=sys.stderr, flush=True)
    else:
        public = settings.base_url.rstrip("/") if settings.base_url else None
        issuer = settings.issuer or (
            f"{public.removesuffix('/fhir')}/auth"
            if public
            else "<base URL of the first request>/auth (pinned; set --base-url to choose)"
        )
        print(
            f"auth: SMART on FHIR, tokens from {issuer} (discovery:"
            f" {public or url}/.well-known/smart-configuration); register clients and users"
            " with `billable clients add` / `billable users add` (docs/security.md)",
            file=sys.stderr,
        )

    import uvicorn

    if args.workers < 1:
        print("billable: --workers must be at least 1", file=sys.stderr)
        return 2
    print(f"Billable FHIR R4 server at {url} (store {settings.store_url})", file=sys.stderr)
    if args.workers > 1:
        # Each worker process builds its own app from the same settings (uvicorn imports
        # the factory there); they share the listening socket and the store.
        from server.app import WORKER_SETTINGS_ENV, worker_app, worker_settings_json

        os.environ[WORKER_SETTINGS_ENV] = worker_settings_json(settings)
        print(f"{args.workers} worker processes", file=sys.stderr)
        app: object = f"{worker_app.__module__}:{worker_app.__name__}"
    else:
        from server.app import create_app

        app = create_app(settings)
    uvicorn.run(
        app,  # type: ignore[arg-type]
        factory=args.workers > 1,
        workers=args.workers if args.workers > 1 else None,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        access_log=False,
        # X-Forwarded-* only from configured proxies (uvicorn's default trusts loopback).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies),
        ssl_certfile=args.tls_cert,
        ssl_keyfile=args.tls_key,
    )
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["terminology"]:
        # The terminology package owns its sub-commands and their arguments.
        from terminology.cli import main as terminology_main

        return terminology_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "reindex":
        return reindex_command(args)
    if args.command == "load":
        from server.bundles.loader import load_command

        return load_command(args)
    if args.command == "feed":
        from server.feeds.synthea import feed_command

        return feed_command(args)
    if args.command == "code":
        from server.coding_cli import code_command

        return code_command(args)
    if args.command == "x12":
        from server.x12.cli import x12_command

        return x12_command(args)
    from server.auth.cli import COMMANDS, run

    if args.command in COMMANDS:
        return run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
