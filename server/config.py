"""Settings: one immutable object, built from the CLI and environment, passed to the app."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from server.storage.factory import DEFAULT_STORE_URL

AUTH_MODES = ("smart", "off")
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Settings:
    store_url: str = DEFAULT_STORE_URL
    host: str = "127.0.0.1"
    port: int = 8080
    auth: str = "off"
    # Public FHIR base URL when behind a proxy; by default derived from each request.
    base_url: str | None = None
    max_body_bytes: int = 16 * MIB
    # POST [base] (transaction and batch Bundles): a real patient's history is ~100 MB.
    max_bundle_bytes: int = 128 * MIB
    default_count: int = 20
    max_count: int = 1000
    # Load every terminology table in the background at start-up (the CLI turns it on;
    # tests leave it off so that each app they build starts instantly).
    preload_terminology: bool = False
    # Security (docs/security.md). `auth` stays "off" here for in-process tests; the CLI
    # defaults to "smart". `issuer`: trust an external authorization server instead of the
    # embedded one; `jwks_url`: its keys (default: from its discovery document).
    issuer: str | None = None
    jwks_url: str | None = None
    cors_origins: tuple[str, ...] = ()
    rate_limit_per_minute: int = 0
    # Addresses of reverse proxies whose X-Forwarded-For/-Proto headers are believed;
    # none by default, so the audit trail records the connecting peer.
    trusted_proxies: tuple[str, ...] = ()
    # The audit chain's HMAC key (server/audit/seal.py): a file (default next to the
    # SQLite file, or ./data/audit-<db>.key for MongoDB) or a configured secret. The
    # chain's anchor file lives next to the key file.
    audit_key_file: str | None = None
    audit_key: str | None = None
    # Claim generation when a finished Encounter is written (docs/coding.md): "auto" or
    # "manual" ($generate-claim only). The CLI defaults to auto; tests build apps without it.
    coding: str = "manual"
    coding_locality: str = "00000-00"  # MPFS locality (MAC-locality) of the charge master
    charge_factor: float = 1.0  # charge master = fee schedule amount x this factor
    # Automatic coding skips encounters older than this many days (0: no limit; the CLI
    # and BILLABLE_TIMELY_FILING_DAYS default to 365, the Medicare limit; tests to 0).
    timely_filing_days: int = 0
    # Adjudication of generated claims (docs/adjudication.md): "auto" adjudicates a clean
    # claim as soon as the coding engine commits it; "manual" waits for Claim/$submit.
    # The CLI defaults to auto; tests build apps without it.
    adjudication: str = "manual"
    # Bulk Data $export (docs/bulk.md): where files go, the size at which a file is split,
    # and how long a finished export's files stay downloadable.
    export_dir: str = "./data/export"
    export_file_max_bytes: int = 128 * MIB
    export_expiry_seconds: int = 3600
    # X12 5010 837/835 (docs/x12.md): who sends and receives the interchanges and who
    # bills. Each is set by BILLABLE_<NAME> (e.g. BILLABLE_X12_BILLING_NPI). With no
    # billing NPI/tax id configured, a claim's provider Organization must carry its own,
    # or the 837 is refused naming the missing element.
    x12_usage: str = "T"  # ISA15: T test, P production
    x12_sender_id: str = "BILLABLE"  # ISA06/GS02 (qualifier ZZ)
    x12_receiver_id: str = "CLEARINGHOUSE"  # ISA08/GS03 (qualifier ZZ); 1000B NM109
    x12_submitter_name: str = "BILLABLE"
    x12_submitter_id: str = "BILLABLE"  # 1000A NM109 (ETIN)
    x12_submitter_contact: str = "BILLING OFFICE"
    x12_submitter_phone: str = "5555550100"
    x12_receiver_name: str = "CLEARINGHOUSE"
    x12_billing_name: str | None = None
    x12_billing_npi: str | None = None
    x12_billing_tax_id: str | None = None
    x12_billing_taxonomy: str | None = None
    x12_billing_address: str | None = None
    x12_billing_city: str | None = None
    x12_billing_state: str | None = None
    x12_billing_zip: str | None = None  # nine digits (5010: no PO box ZIP+4 of 0000)
    # The coders' web app at /app (docs/coder-app.md): on unless BILLABLE_CODER_APP=off;
    # the OAuth client id it signs in as (registered with `billable clients add`).
    coder_app: bool = True
    coder_app_client: str = "billable-coder-app"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Defaults, then ``BILLABLE_*`` variables, then explicit (CLI) overrides."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        if "BILLABLE_STORE" in env:
            values["store_url"] = env["BILLABLE_STORE"]
        if "BILLABLE_AUTH" in env:
            values["auth"] = env["BILLABLE_AUTH"]
        if "BILLABLE_BASE_URL" in env:
            values["base_url"] = env["BILLABLE_BASE_URL"]
        if "BILLABLE_ISSUER" in env:
            values["issuer"] = env["BILLABLE_ISSUER"]
        if "BILLABLE_JWKS_URL" in env:
            values["jwks_url"] = env["BILLABLE_JWKS_URL"]
        if "BILLABLE_CORS_ORIGINS" in env:
            values["cors_origins"] = tuple(env["BILLABLE_CORS_ORIGINS"].split())
        if "BILLABLE_RATE_LIMIT" in env:
            values["rate_limit_per_minute"] = int(env["BILLABLE_RATE_LIMIT"])
        if "BILLABLE_TRUSTED_PROXIES" in env:
            values["trusted_proxies"] = tuple(
                env["BILLABLE_TRUSTED_PROXIES"].replace(",", " ").split()
            )
        if "BILLABLE_AUDIT_KEY_FILE" in env:
            values["audit_key_file"] = env["BILLABLE_AUDIT_KEY_FILE"]
        if "BILLABLE_AUDIT_KEY" in env:
            values["audit_key"] = env["BILLABLE_AUDIT_KEY"]
        if "BILLABLE_CODING" in env:
            values["coding"] = env["BILLABLE_CODING"]
        if "BILLABLE_CODING_LOCALITY" in env:
            values["coding_locality"] = env["BILLABLE_CODING_LOCALITY"]
        if "BILLABLE_CHARGE_FACTOR" in env:
            values["charge_factor"] = float(env["BILLABLE_CHARGE_FACTOR"])
        values["timely_filing_days"] = int(env.get("BILLABLE_TIMELY_FILING_DAYS", "365"))
        if "BILLABLE_ADJUDICATION" in env:
            values["adjudication"] = env["BILLABLE_ADJUDICATION"]
        if "BILLABLE_MAX_BODY_MB" in env:
            values["max_body_bytes"] = int(float(env["BILLABLE_MAX_BODY_MB"]) * MIB)
        if "BILLABLE_MAX_BUNDLE_MB" in env:
            values["max_bundle_bytes"] = int(float(env["BILLABLE_MAX_BUNDLE_MB"]) * MIB)
        if "BILLABLE_EXPORT_DIR" in env:
            values["export_dir"] = env["BILLABLE_EXPORT_DIR"]
        if "BILLABLE_EXPORT_FILE_MB" in env:
            values["export_file_max_bytes"] = int(float(env["BILLABLE_EXPORT_FILE_MB"]) * MIB)
        if "BILLABLE_EXPORT_EXPIRY" in env:
            values["export_expiry_seconds"] = int(env["BILLABLE_EXPORT_EXPIRY"])
        for f in fields(cls):
            if f.name.startswith("x12_") and f"BILLABLE_{f.name.upper()}" in env:
                values[f.name] = env[f"BILLABLE_{f.name.upper()}"]
        if "BILLABLE_CODER_APP" in env:
            values["coder_app"] = env["BILLABLE_CODER_APP"].lower() not in ("off", "0", "false")
        if "BILLABLE_CODER_APP_CLIENT" in env:
            values["coder_app_client"] = env["BILLABLE_CODER_APP_CLIENT"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)  # type: ignore[arg-type]
