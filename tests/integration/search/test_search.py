"""The search index: query language, SQLite FTS5 and PostgreSQL backends behind one
Protocol, rebuild from the archive, the Kafka indexer, coverage and the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers.archive_builder import T0, build_archive
from helpers.cli import sealtrail

from sealtrail.errors import ConfigError
from sealtrail.reading import ArchiveSource
from sealtrail.runtime.dev import free_port, wait_for_port
from sealtrail.search import IndexBackend, open_index, parse_query, row_from_record
from sealtrail.search._rebuild import rebuild_index


@dataclass(frozen=True)
class QueryCase:
    text: str
    filters: dict[str, tuple[str, ...]]
    since: int | None = None
    until: int | None = None
    words: tuple[str, ...] = ()


QUERIES = [
    QueryCase("actor:u-123 action:delete since:2024-01-01 until:2024-01-02",
              {"actor": ("u-123",), "action": ("delete",)}, T0, T0 + 86_400_000_000),
    QueryCase("type:auth.login outcome:denied", {"event_type": ("auth.login",),
                                                 "outcome": ("DENIED",)}),
    QueryCase("resource:invoice/inv-9 actor:a actor:b",
              {"resource_type": ("invoice",), "resource_id": ("inv-9",), "actor": ("a", "b")}),
    QueryCase('trace:abc "card declined" http://x', {"trace_id": ("abc",)},
              words=("card declined", "http://x")),
]


@pytest.mark.parametrize("case", QUERIES, ids=[c.text for c in QUERIES])
def test_query_language(case: QueryCase) -> None:
    """key:value terms become filters (repeated keys OR), since/until a range, the rest words."""
    q = parse_query(case.text)
    assert dict(q.filters) == case.filters
    assert (q.since, q.until, q.words) == (case.since, case.until, case.words)


def test_bad_queries_are_usage_errors() -> None:
    """An empty value, an unreadable time or an inverted range is a ConfigError."""
    for text in ("actor:", "since:yesterday", "since:2024-02-01 until:2024-01-01", '"open'):
        with pytest.raises(ConfigError):
            parse_query(text)


# -- backends ----------------------------------------------------------------------------


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway PostgreSQL server on loopback (Debian's postgresql package), or a skip."""
    pg = _pg_bin()
    if pg is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql); "
                    "the PostgreSQL index backend is not tested")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'psycopg[binary]')")
    import os
    import tempfile

    # outside pytest's basetemp (mode 0700): the server may run as another user
    base = Path(tempfile.mkdtemp(prefix="sealtrail-pg-"))
    data = base / "data"
    data.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
        base.chmod(0o755)
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run([*as_user, str(pg / "initdb"), "-D", str(data), "-U", "sealtrail",
                    "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
    proc = subprocess.Popen([*as_user, str(pg / "postgres"), "-D", str(data), "-p", str(port),
                             "-h", "127.0.0.1", "-k", str(data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 30, proc)
        time.sleep(0.5)
        yield f"postgresql://sealtrail@127.0.0.1:{port}/postgres"
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IndexBackend]:
    """Each backend, empty."""
    if request.param == "sqlite":
        backend = open_index(str(tmp_path / "index.sqlite"))
    else:
        backend = open_index(request.getfixturevalue("postgres_url"))
        backend.clear()
    try:
        yield backend
    finally:
        backend.close()


def test_backends_answer_filters_ranges_and_free_text_alike(
        index: IndexBackend, tmp_path: Path) -> None:
    """Rebuilt from a verified archive, each backend answers the same queries the same way,
    and says what time range it covers."""
    built = build_archive(tmp_path, chains=2, segments=3, records=10)
    result = rebuild_index(ArchiveSource(built.store, built.keyring), index)
    events = [r for c in built.chain_ids for r in built.records[c] if r["event"]]
    assert result.indexed == len(events) and not result.breaks

    def expect(pred: Any) -> list[tuple[str, int]]:
        return sorted(((r["chain_id"], r["seq"]) for r in events if pred(r["event"], r)),
                      key=lambda k: (events_by[k]["event"]["occurred_at"], k))

    events_by = {(r["chain_id"], r["seq"]): r for r in events}

    def got(text: str) -> list[tuple[str, int]]:
        return [(row.chain_id, row.seq) for row in index.search(parse_query(text))]

    assert got("actor:user-3 action:update") == expect(
        lambda e, r: e["actor"]["id"] == "user-3" and e["action"] == "update")
    since = T0 - 250_000 + 5_000
    assert got(f"since:{since} until:{since + 10_000} outcome:denied") == expect(
        lambda e, r: since <= e["occurred_at"] < since + 10_000 and e["outcome"] == "DENIED")
    assert got("billing:write") == expect(lambda e, r: "billing:write" in
                                          e["authorization"]["permissions"])
    assert got("billing:write actor:user-3") == expect(
        lambda e, r: "billing:write" in e["authorization"]["permissions"]
        and e["actor"]["id"] == "user-3")
    assert got("resource:invoice/invoice-130 tenant:tenant-1") == expect(
        lambda e, r: e["resource"]["id"] == "invoice-130" and e["tenant"] == "tenant-1")
    assert got("nothing-matches-this") == []
    first = index.search(parse_query("chain:" + built.chain_ids[0]))
    assert {row.segment for row in first} == {0, 1, 2}
    coverage = index.coverage()
    assert coverage.events == len(events) and coverage.chains == 2
    said = coverage.describe(T0 - 86_400_000_000, None)
    assert "not covered: before" in said


def test_field_values_match_regardless_of_case(index: IndexBackend, tmp_path: Path) -> None:
    """Every key:value filter matches whatever case the value was sealed in, as outcome:
    always did, on both backends; a different value still matches nothing."""
    built = build_archive(tmp_path, chains=2, segments=2, records=8)
    rebuild_index(ArchiveSource(built.store, built.keyring), index)

    def got(text: str) -> list[tuple[str, int]]:
        return [(row.chain_id, row.seq) for row in index.search(parse_query(text))]

    chain = built.chain_ids[0]
    for text in ("actor:user-3 action:update", "resource:invoice/invoice-130 tenant:tenant-1",
                 f"chain:{chain}", "outcome:denied"):
        expected = got(text)
        assert expected, text
        assert got(text.upper()) == expected, text.upper()
        assert got(text.title()) == expected, text.title()
    assert got("actor:USER-33") == []


def test_an_index_file_of_an_older_version_gets_case_insensitive_indexes(
        tmp_path: Path) -> None:
    """A SQLite index made with case-sensitive filter indexes is given case-insensitive
    ones when opened (the same names), and its rows are kept."""
    import sqlite3

    path = tmp_path / "old.sqlite"
    built = build_archive(tmp_path, chains=1, segments=1, records=4, rejections=())
    index = open_index(str(path))
    index.add([row for r in built.records[built.chain_ids[0]]
               if (row := row_from_record(r, 0)) is not None])
    index.close()
    db = sqlite3.connect(path)
    db.execute("DROP INDEX events_actor")
    db.execute("CREATE INDEX events_actor ON events (actor, occurred_at)")
    db.commit()
    db.close()
    index = open_index(str(path))
    try:
        assert len(index.search(parse_query("actor:USER-1"))) == len(
            index.search(parse_query("actor:user-1"))) > 0
    finally:
        index.close()
    db = sqlite3.connect(path)
    (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'events_actor'").fetchone()
    plan = " ".join(str(r) for r in db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM events WHERE actor COLLATE NOCASE IN ('x')"))
    db.close()
    assert "NOCASE" in sql and "events_actor" in plan


def test_summaries_agree_in_number(tmp_path: Path) -> None:
    """Counts in the summaries read "1 event", "1 chain", "2 events"."""
    built = build_archive(tmp_path, chains=1, segments=1, records=4, rejections=())
    idx = tmp_path / "idx.sqlite"
    proc = sealtrail(tmp_path, "index", "rebuild", "--index", idx, "--archive", built.root,
                     "--keys", built.keyring_path)
    assert proc.returncode == 0, proc.stderr
    assert ": 4 events of 1 chain (4 entries checked)" in proc.stdout
    assert "the index holds 4 events of 1 chain," in proc.stdout
    event_id = built.records[built.chain_ids[0]][0]["event"]["event_id"]
    proc = sealtrail(tmp_path, "search", f"event:{event_id}", "--index", idx)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("1 event; "), proc.stderr


def test_adding_twice_is_a_no_op_that_fills_the_segment(index: IndexBackend,
                                                        tmp_path: Path) -> None:
    """A row seen first from Kafka (segment unknown), then from the archive, is one row with
    its segment."""
    built = build_archive(tmp_path, chains=1, segments=1, records=3, rejections=())
    record = built.records[built.chain_ids[0]][1]
    assert index.add([row_from_record(record)]) == 1  # type: ignore[list-item]
    assert index.add([row_from_record(record, 0)]) == 0  # type: ignore[list-item]
    rows = index.search(parse_query(""))
    assert len(rows) == 1 and rows[0].segment == 0
    assert row_from_record(built.records[built.chain_ids[0]][0] | {"event": None}) is None


def test_rebuild_stops_a_chain_at_its_break(tmp_path: Path) -> None:
    """A tampered segment: its chain is indexed up to the break, which is reported."""
    from helpers.archive_builder import reseal, segment_bytes, write_object

    built = build_archive(tmp_path, chains=2, segments=3, records=4, rejections=())
    records = built.read_records(1, 1)
    records[0]["event"]["action"] = "delete"
    reseal(records, 0)
    write_object(built.segment_path(1, 1), segment_bytes(built.chain_ids[1], records))
    index = open_index(str(tmp_path / "i.sqlite"))
    result = rebuild_index(ArchiveSource(built.store, built.keyring), index)
    assert len(result.breaks) == 1 and result.breaks[0].chain_id == built.chain_ids[1]
    assert result.indexed == 12 + 4
    index.close()


def test_search_cli_prints_a_table_json_lines_and_coverage(tmp_path: Path) -> None:
    """`sealtrail index rebuild` then `search` (table and --json) with the coverage line."""
    built = build_archive(tmp_path, chains=1, segments=2, records=8)
    idx = tmp_path / "idx.sqlite"
    proc = sealtrail(tmp_path, "index", "rebuild", "--index", idx, "--archive", built.root,
                     "--keys", built.keyring_path)
    assert proc.returncode == 0, proc.stderr
    proc = sealtrail(tmp_path, "search", "actor:user-3", "--index", idx)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].split()[:3] == ["OCCURRED", "(UTC)", "ACTOR"]
    assert "user-3" in proc.stdout and "the index holds 14 events" in proc.stderr
    proc = sealtrail(tmp_path, "search", "actor:user-3 until:2020-01-01", "--json",
                     "--index", idx)
    assert proc.stdout == "" and "none of the asked range is covered" in proc.stderr
    proc = sealtrail(tmp_path, "search", "actor:user-3", "--json", "--index", idx)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows and all(r["actor"] == "user-3" and r["segment"] in (0, 1) for r in rows)
    assert "chain of custody NOT recorded" in proc.stderr


def test_indexer_consumes_the_sealed_topic(settings: Any, stages: list[Any],
                                           tmp_path: Path) -> None:
    """The indexer consumer indexes what the sealer seals; a restart adds nothing twice."""
    from helpers.stages import run_pipeline

    from sealtrail.consumers.indexer import Indexer
    from sealtrail.schemas.registry_client import registry_client

    run_pipeline(settings, stages, tmp_path, 200)
    index = open_index(str(tmp_path / "k.sqlite"))
    deadline = time.monotonic() + 60
    total = 0
    while time.monotonic() < deadline and total < 200:
        indexer = Indexer(settings, index=index, group=f"idx-{settings.raw_topic}",
                          registry=registry_client(settings.registry_url))
        indexer.run(idle_exit=2.0)
        total = index.coverage().events
    assert total == 200
    rows = index.search(parse_query("service:billing", limit=1000))
    assert len(rows) == 200 and all(r.segment is None for r in rows)
    again = Indexer(settings, index=index, group=f"idx2-{settings.raw_topic}",
                    registry=registry_client(settings.registry_url))
    again.run(idle_exit=2.0)
    assert again.seen >= 200 and again.indexed == 0
    index.close()
