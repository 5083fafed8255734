"""From a Synthea population to payers' EOBs, the README walk-through, with its figures.

    python -m bench.synthea_e2e [--patients 20] [--seed 7] [--dir data/synthea-20]
                                [--path http|load|both] [--jobs 2]

Generates the population with ``bench/synthea.sh`` unless DIR/fhir already holds one,
feeds it (``billable feed synthea``: Coverage from Synthea's payers, Synthea's claims
dropped), then, on a fresh SQLite store:

* ``http``: starts ``billable serve`` with SMART auth on (coding and adjudication
  automatic, the defaults), posts each bundle with a system token, waits until every
  finished encounter has its claim and adjudication is idle;
* ``load``: runs ``billable load --code DIR``, then serves the store to read the results.

and prints: resources/s ingest, encounters/s coded, claims active / draft with the top
reasons of the drafts (their review Tasks' edit codes), ClaimResponses and EOBs, the payer
mix with totals submitted / allowed / paid / patient, ``$export`` of the EOBs, peak RSS
(server for http, the load process for load) and store bytes per fed byte. Prints
figures, never pass/fail.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench._server import running_server
from server.feeds.synthea import feed_files, summary

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ("hospitalInformation", "practitionerInformation")
EDIT_SYSTEM_SUFFIX = "coding-edit"


def generate(n: int, seed: int, out: Path) -> None:
    if (out / "fhir").is_dir() and any((out / "fhir").glob("*.json")):
        print(f"using the population in {out}/fhir", file=sys.stderr)
        return
    subprocess.run(
        ["bash", str(ROOT / "bench" / "synthea.sh"), str(n), str(seed), str(out)], check=True
    )


def cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the process's peak resident set size so far (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def store_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if p.is_file())


def print_store(db: Path, fed_bytes: int) -> None:
    size = store_bytes(db)
    mib = 2**20
    print(
        f"store: {size / mib:.0f} MiB for {fed_bytes / mib:.0f} MiB fed ({size / fed_bytes:.2f}x)"
    )


def pages(http: httpx.Client, url: str, **params: str) -> Iterator[dict[str, Any]]:
    next_url: str | None = url
    query: dict[str, str] | None = {**params, "_count": "500"}
    while next_url:
        body = http.get(next_url, params=query).raise_for_status().json()
        for entry in body.get("entry", []):
            if entry.get("search", {}).get("mode", "match") == "match":
                yield entry["resource"]
        next_url = next(
            (li["url"] for li in body.get("link", []) if li["relation"] == "next"), None
        )
        query = None


def count(http: httpx.Client, url: str, **params: str) -> int:
    body = http.get(url, params={**params, "_summary": "count"}).raise_for_status().json()
    return int(body.get("total", 0))


def wait_until_coded(http: httpx.Client, timeout: float = 3600) -> float:
    """Seconds until coding and adjudication are idle (the last change seen)."""
    started = time.monotonic()
    last: tuple[int, int] | None = None
    steady = 0
    while time.monotonic() - started < timeout:
        encounters = count(http, "/Encounter", status="finished")
        claims = count(http, "/Claim")
        responses = count(http, "/ClaimResponse")
        # Done when nothing moved for 15 s: every encounter has its claim, or the rest
        # are past the timely filing window (the automatic trigger leaves those alone).
        if (claims, responses) == last:
            steady += 1
            if steady >= 5 or (claims >= encounters and steady >= 3):
                return time.monotonic() - started - 3 * steady
        else:
            steady = 0
        last = (claims, responses)
        print(f"  coding: {claims}/{encounters} claims, {responses} responses", file=sys.stderr)
        time.sleep(3)
    return time.monotonic() - started


def post_all(http: httpx.Client, files: list[Path], jobs: int) -> tuple[int, int]:
    """POST reference bundles first, then the patients; (resources, failed files)."""
    first = [p for p in files if p.name.startswith(REFERENCE)]
    rest = [p for p in files if p not in first]

    def one(path: Path) -> tuple[int, bool]:
        r = http.post("", content=path.read_bytes())
        if r.status_code != 200:
            print(f"  {path.name}: {r.status_code} {r.text[:200]}", file=sys.stderr)
            return 0, False
        return len(r.json().get("entry", [])), True

    results = [one(p) for p in first]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results += list(pool.map(one, rest))
    return sum(n for n, _ in results), sum(1 for _, ok in results if not ok)


def report(http: httpx.Client, base: str) -> None:
    claims = list(pages(http, "/Claim"))
    status = Counter(c.get("status") for c in claims)
    insured = sum(
        1
        for c in claims
        if c.get("status") == "active"
        and (c["insurance"][0].get("coverage") or {}).get("reference")
    )
    total = len(claims) or 1
    print(f"\nclaims: {len(claims)}")
    for name, n in status.most_common():
        print(f"  {name:<10} {n:6d}  {100.0 * n / total:5.1f} %")
    print(f"  active and insured (adjudicated automatically): {insured}")
    reasons: Counter[str] = Counter()
    for task in pages(http, "/Task", code="review-claim"):
        codes = set()
        for contained in task.get("contained", []):
            for issue in contained.get("issue", []):
                if issue.get("severity") == "error":
                    for coding in (issue.get("details") or {}).get("coding", []):
                        codes.add(coding.get("code"))
        reasons[", ".join(sorted(c for c in codes if c))] += 1
    print("draft claims by reason (error edit codes on the review Task):")
    for name, n in reasons.most_common(6):
        print(f"  {n:6d}  {name}")

    responses = count(http, "/ClaimResponse")
    eobs = list(pages(http, "/ExplanationOfBenefit"))
    print(f"\nClaimResponses: {responses}; ExplanationOfBenefits: {len(eobs)}")
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for eob in eobs:
        payer = (eob.get("insurer") or {}).get("display") or "?"
        row = sums[payer]
        row["eobs"] += 1
        for t in eob.get("total", []):
            code = t["category"]["coding"][0]["code"]
            row[code] += float(t["amount"]["value"])
    cols = ("submitted", "eligible", "benefit", "memberliability")
    heads = ("submitted", "allowed", "paid", "patient")
    print(f"  {'payer':<24} {'EOBs':>5} " + " ".join(f"{h:>11}" for h in heads))
    grand: dict[str, float] = defaultdict(float)
    for payer, row in sorted(sums.items(), key=lambda kv: -kv[1]["eobs"]):
        print(f"  {payer:<24} {int(row['eobs']):5d} " + " ".join(f"{row[c]:11.2f}" for c in cols))
        for c in ("eobs", *cols):
            grand[c] += row[c]
    print(f"  {'total':<24} {int(grand['eobs']):5d} " + " ".join(f"{grand[c]:11.2f}" for c in cols))

    started = time.monotonic()
    kick = http.get(
        "/$export",
        params={"_type": "ExplanationOfBenefit"},
        headers={"Prefer": "respond-async", "Accept": "application/fhir+json"},
    )
    if kick.status_code != 202:
        print(f"$export: {kick.status_code} {kick.text[:200]}")
        return
    status_url = kick.headers["content-location"]
    while (poll := http.get(status_url)).status_code == 202:
        time.sleep(1)
    lines = sum(len(http.get(o["url"]).content.splitlines()) for o in poll.json().get("output", []))
    print(f"$export of ExplanationOfBenefit: {lines} lines in {time.monotonic() - started:.1f} s")


def run_http(files: list[Path], fed_bytes: int, work: Path, jobs: int) -> None:
    db = work / "http.db"
    store = f"sqlite:///{db}"
    with running_server(store, ("--auth", "smart"), {"BILLABLE_EXPORT_DIR": str(work / "x")}) as (
        base,
        pid,
    ):
        token = cli("token", "--store", store, "--base-url", f"{base}/fhir")
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
        with httpx.Client(base_url=f"{base}/fhir", headers=headers, timeout=600) as http:
            started = time.monotonic()
            resources, failed = post_all(http, files, jobs)
            ingest = time.monotonic() - started
            coded_after = wait_until_coded(http)
            encounters = count(http, "/Claim")
            finished = count(http, "/Encounter", status="finished")
            print("\n# through HTTP (billable serve, SMART auth on, coding and adjudication auto)")
            print(
                f"ingest: {resources} resources in {ingest:.1f} s"
                f" ({resources / ingest:.0f} resources/s), {failed} files refused"
            )
            print(
                f"coding: {encounters} encounters coded {ingest + coded_after:.1f} s after the"
                f" first POST ({encounters / (ingest + coded_after):.1f} encounters/s,"
                " coding overlaps the ingest);"
                f" {finished - encounters} of {finished} finished encounters not coded"
                " automatically (past the timely filing window, where the engine has one)"
            )
            report(http, base)
            print(f"peak server RSS: {peak_rss_mib(pid):.0f} MiB")
    print_store(db, fed_bytes)


def run_load(fed: Path, fed_bytes: int, work: Path, jobs: int) -> None:
    db = work / "load.db"
    store = f"sqlite:///{db}"
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "server.cli", "load", "--code", "--quiet",
            "--jobs", str(jobs), "--store", store, str(fed),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BILLABLE_ADJUDICATION": "auto"},
    )  # fmt: skip
    peak = 0.0
    while proc.poll() is None:  # VmHWM only grows: the last reading is the peak
        try:
            peak = max(peak, peak_rss_mib(proc.pid))
        except OSError:
            break
        time.sleep(0.5)
    _out, err = proc.communicate()
    seconds = time.monotonic() - started
    print("\n# through billable load --code (in process, no HTTP)")
    print(err.strip())
    print(f"load + code: {seconds:.1f} s; peak RSS of the load process: {peak:.0f} MiB")
    with running_server(store, ("--auth", "smart"), {"BILLABLE_EXPORT_DIR": str(work / "y")}) as (
        base,
        _pid,
    ):
        token = cli("token", "--store", store, "--base-url", f"{base}/fhir")
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"{base}/fhir", headers=headers, timeout=600) as http:
            report(http, base)
    print_store(db, fed_bytes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=Path("data/synthea-20"))
    parser.add_argument("--path", choices=("http", "load", "both"), default="both")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    generate(args.patients, args.seed, args.dir)
    work = args.dir / "bench"
    for old in work.glob("*.db*"):
        old.unlink()
    fed = args.dir / "fed"
    started = time.monotonic()
    feed_report = feed_files([args.dir / "fhir"], fed)
    print("# feed")
    print(summary(feed_report))
    print(f"feed: {time.monotonic() - started:.1f} s")
    files = sorted(fed.glob("*.json"))
    fed_bytes = sum(p.stat().st_size for p in files)
    work.mkdir(parents=True, exist_ok=True)
    if args.path in ("http", "both"):
        run_http(files, fed_bytes, work, args.jobs)
    if args.path in ("load", "both"):
        run_load(fed, fed_bytes, work, args.jobs)


if __name__ == "__main__":
    main()
