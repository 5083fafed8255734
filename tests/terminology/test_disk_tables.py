"""The on-disk tables (``terminology.disk_build`` / ``disk_tables``) answer exactly what
the parsed compiled files say, and their cache is keyed by what they contain."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from terminology import catalog, disk_build, disk_tables, store, systems
from terminology.catalog import Entry
from terminology.model import CodeSystemVersion, ConceptMapVersion
from terminology.service import TerminologyService


def _parsed(entry: Entry) -> object:
    return catalog.parse(entry.kind, store.read_file(entry.path))


def _entries(service: TerminologyService, kind: str) -> list[Entry]:
    return [e for e in service.catalog(kind)]


@pytest.mark.parametrize("name", ["HCPCS", "CPT", "ICD10PCS", "ICD10CM-2026", "SNOMED_CT"])
def test_a_code_system_on_disk_lists_every_concept_as_the_compiled_file_does(
    service: TerminologyService, name: str
) -> None:
    entry = next(e for e in _entries(service, "codesystem") if name in e.path.name)
    parsed = _parsed(entry)
    on_disk = entry.load()
    assert isinstance(parsed, CodeSystemVersion) and isinstance(on_disk, CodeSystemVersion)
    assert isinstance(on_disk.concepts, disk_tables.ConceptTable)
    assert len(on_disk.concepts) == len(parsed.concepts)
    assert list(on_disk.concepts) == list(parsed.concepts)  # the release's order
    for (code, got), want in zip(on_disk.concepts.items(), parsed.concepts.values(), strict=True):
        assert code == want.code
        assert got == want, code
    assert dict(on_disk.notes) == {k: v for k, v in parsed.notes.items() if v}
    assert on_disk.content == parsed.content


def test_point_lookups_on_disk_agree_with_the_parsed_table_and_miss_like_a_dict(
    service: TerminologyService,
) -> None:
    entry = next(e for e in _entries(service, "codesystem") if "ICD10CM-2027" in e.path.name)
    parsed = _parsed(entry)
    on_disk = entry.load()
    assert isinstance(parsed, CodeSystemVersion) and isinstance(on_disk, CodeSystemVersion)
    for code in ("E11.9", "E11", "G63", "S72.001A", "Z29.14", "A00-B99"):
        if code in parsed.concepts:
            assert on_disk.concepts[code] == parsed.concepts[code]
            assert on_disk.concepts.get(code) == parsed.concepts[code]
            assert on_disk.notes.get(code, {}) == parsed.notes.get(code, {})
            assert on_disk.ancestors(code) == parsed.ancestors(code)
    assert "NOT-A-CODE" not in on_disk.concepts
    assert on_disk.concepts.get("NOT-A-CODE") is None
    with pytest.raises(KeyError):
        on_disk.concepts["NOT-A-CODE"]
    assert on_disk.descendants("E11") == parsed.descendants("E11")


def test_concept_maps_on_disk_hold_every_target_in_map_order(service: TerminologyService) -> None:
    for entry in _entries(service, "conceptmap"):
        parsed = _parsed(entry)
        on_disk = entry.load()
        assert isinstance(parsed, ConceptMapVersion) and isinstance(on_disk, ConceptMapVersion)
        assert list(on_disk.entries) == list(parsed.entries), entry.path.name
        assert dict(on_disk.entries.items()) == dict(parsed.entries.items())
        assert dict(on_disk.source_displays) == dict(parsed.source_displays)
        assert (on_disk.source_system, on_disk.target_system) == (
            parsed.source_system,
            parsed.target_system,
        )
        assert on_disk.entries.get("no such source") is None


@pytest.mark.parametrize(
    "kind", ["ncci-ptp", "mue", "mpfs-rvu", "aoc", "mpfs-gpci", "mpfs-locality"]
)
def test_billing_tables_on_disk_are_the_compiled_rows(
    service: TerminologyService, kind: str
) -> None:
    for entry in _entries(service, kind):
        parsed = _parsed(entry)
        on_disk = entry.load()
        assert isinstance(on_disk, disk_tables.RowTable)
        assert list(on_disk) == parsed
        assert len(on_disk) == len(parsed)  # type: ignore[arg-type]
        assert on_disk[0] == parsed[0] and on_disk[-1] == parsed[-1]  # type: ignore[index]


def test_keyed_billing_lookups_answer_what_the_rows_say(service: TerminologyService) -> None:
    from datetime import date

    day = date(2026, 3, 2)
    rvus = list(next(iter(service.catalog("mpfs-rvu"))).load())
    for row in rvus[:: max(1, len(rvus) // 200)]:
        assert service.rvu(row.code, day, row.modifier) == next(
            r for r in reversed(rvus) if (r.code, r.modifier) == (row.code, row.modifier)
        )
    assert service.rvu("NOT-A-CODE", day) is None
    mues = list(next(iter(service.catalog("mue"))).load())
    assert service.mue(mues[0].code, day) == mues[0]
    addons = list(next(iter(service.catalog("aoc"))).load())
    first = addons[0]
    assert first in service.addons(first.addon, max(day, first.effective))


def test_expand_with_a_filter_finds_the_codes_whose_code_or_display_holds_every_word(
    service: TerminologyService,
) -> None:
    url = f"{systems.ICD10CM}?fhir_vs"
    from datetime import date

    day = date(2026, 3, 2)
    found = service.expand(url, filter="diabetes neuropathy", day=day)
    cs, _ = service.code_system(systems.ICD10CM, day)
    want = [
        c
        for c, x in cs.concepts.items()
        if all(w in f"{c} {x.display}".lower() for w in ("diabetes", "neuropathy"))
    ]
    assert [i.code for i in found.items] == want and found.total == len(want) > 5
    under = service.expand(f"{systems.ICD10CM}?fhir_vs=isa/E11", filter="kidney", day=day)
    assert under.items and all(i.code.startswith("E11") for i in under.items)


# ------------------------------------------------------------------------ the cache
def _small_table(tmp_path: Path, display: str) -> Path:
    data = {
        "kind": "codesystem",
        "meta": {
            "url": "urn:test:cache",
            "version": "1",
            "name": "CACHE",
            "title": "cache test",
            "effective_from": "2026-01-01",
            "effective_to": None,
            "source": "test",
        },
        "content": "complete",
        "concepts": [["A", display, None, 1], ["B", "bee", None, 1]],
        "notes": {},
    }
    return catalog.publish(tmp_path / "data", "codesystem-CACHE-1-2026-01-01", data)


def test_a_changed_compiled_file_is_read_from_a_new_cache_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLABLE_TERMINOLOGY_CACHE", str(tmp_path / "cache"))
    path = _small_table(tmp_path, "first")
    service = TerminologyService(data_dir=tmp_path / "data", include_shipped=False)
    assert service.lookup("urn:test:cache", "A").display == "first"
    first_cache = disk_build.cache_file(path, "codesystem")
    assert first_cache.exists()
    _small_table(tmp_path, "second")  # same name, new content (and a new index.json)
    second_cache = disk_build.cache_file(path, "codesystem")
    assert second_cache != first_cache and not second_cache.exists()
    fresh = TerminologyService(data_dir=tmp_path / "data", include_shipped=False)
    assert fresh.lookup("urn:test:cache", "A").display == "second"
    assert second_cache.exists()


def test_the_cache_key_covers_the_catalog_supplement_merged_into_code_systems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _small_table(tmp_path, "first")
    before = disk_build.content_key(path, "codesystem")
    monkeypatch.setitem(disk_build.SUPPLEMENT, "urn:test:cache", {"Z": "added"})
    assert disk_build.content_key(path, "codesystem") != before


def test_processes_building_one_table_at_once_publish_one_complete_file(tmp_path: Path) -> None:
    source = next(p for p in store.SHIPPED_DIR.glob("codesystem-HCPCS-*.json.gz"))
    target = disk_build.cache_file(source, "codesystem", tmp_path / "cache")
    command = [
        sys.executable,
        "-m",
        "terminology.disk_build",
        str(source),
        "codesystem",
        str(target),
    ]
    builders = [subprocess.Popen(command) for _ in range(3)]
    assert [b.wait(timeout=300) for b in builders] == [0, 0, 0]
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")] == [
        target.name
    ]
    table = disk_tables.TableFile(target)
    assert table.meta["count"] > 7000 and table.meta["layout"] == disk_build.LAYOUT


def test_the_cache_command_builds_every_table_and_prunes_what_none_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from terminology.cli import cache_command

    cache = tmp_path / "cache"
    monkeypatch.setenv("BILLABLE_TERMINOLOGY_CACHE", str(cache))
    path = _small_table(tmp_path, "first")
    cache.mkdir()
    stale = cache / f"codesystem-OLD.0123456789abcdef01234567{disk_build.SUFFIX}"
    stale.write_bytes(b"")
    service = TerminologyService(data_dir=tmp_path / "data", include_shipped=False)
    assert cache_command(service, prune=True) == 0
    assert disk_build.cache_file(path, "codesystem").exists()
    assert not stale.exists()
    assert "1 tables on disk" in capsys.readouterr().out
