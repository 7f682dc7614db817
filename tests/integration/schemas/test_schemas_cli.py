"""`sealtrail schemas check` and `sealtrail schemas register`, the compatibility table they
share with the registry, and registry authentication (basic and bearer)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError

from sealtrail import schemas
from sealtrail.errors import ConfigError
from sealtrail.registry import RegistryServer
from sealtrail.schemas import check as schema_check
from sealtrail.schemas.registry_client import registry_client, safe_url

TOKEN = "tok-5f0c2a9e7b"
BASIC = "auditor:pa55-w0rd"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sealtrail.cli.main", *args], capture_output=True, text=True,
        timeout=60, env={**os.environ, "SEALTRAIL_HOME": "/nonexistent-sealtrail-home",
                         **(env or {})},
    )


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    """A copy of the shipped schemas that a test can add versions to."""
    target = tmp_path / "avro"
    target.mkdir()
    for path in schema_check.default_dir().glob("*.avsc"):
        shutil.copy(path, target)
    return target


def add_version(directory: Path, change: Any, name: str = "AuditEvent") -> Path:
    """Write the next version of ``name``: the latest one with ``change(schema)`` applied."""
    latest = max(int(p.name.split(".v")[1].split(".")[0]) for p in directory.glob(f"{name}.v*"))
    schema = json.loads((directory / f"{name}.v{latest}.avsc").read_text())
    change(schema)
    path = directory / f"{name}.v{latest + 1}.avsc"
    path.write_text(json.dumps(schema))
    return path


def field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


# -- schemas check ------------------------------------------------------------------------------


def test_shipped_schemas_pass() -> None:
    """The repository's schemas/ keep their level: exit 0, both schemas listed."""
    result = run_cli("schemas", "check")
    assert result.returncode == 0, result.stderr
    assert "ok  AuditEvent keeps FULL_TRANSITIVE: v1, v2, v3\n" in result.stdout
    assert ("ok  SealedRecord keeps BACKWARD_TRANSITIVE: v1 with AuditEvent v1, "
            "v1 with AuditEvent v2, v1 with AuditEvent v3, v2 with AuditEvent v1, "
            "v2 with AuditEvent v2, v2 with AuditEvent v3\n") in result.stdout
    assert schema_check.check_dir() == []


def test_required_field_without_default_fails_naming_field_and_rule(schema_dir: Path) -> None:
    """A v4 adding a required nested field fails BACKWARD, naming actor.level and the level."""
    add_version(schema_dir, lambda s: field(s, "actor")["type"]["fields"].append(
        {"name": "level", "type": "string"}))
    result = run_cli("schemas", "check", "--dir", str(schema_dir))
    assert result.returncode == 1
    assert ("AuditEvent: v4 breaks FULL_TRANSITIVE against v1: rule BACKWARD"
            in result.stderr)
    assert "field actor.level: READER_FIELD_MISSING_DEFAULT_VALUE" in result.stderr
    assert "against v2: rule BACKWARD" in result.stderr
    assert "against v3: rule BACKWARD" in result.stderr
    assert "rule FORWARD" not in result.stderr


def test_removed_required_field_fails_forward(schema_dir: Path) -> None:
    """A v4 dropping a field without default breaks FORWARD (old sealers cannot read it)."""
    add_version(schema_dir, lambda s: s.update(
        fields=[f for f in s["fields"] if f["name"] != "action"]))
    problems = schema_check.check_dir(schema_dir)
    raw = [p for p in problems if p.subject == "AuditEvent"]
    assert {(p.version, p.against, p.rule, p.field) for p in raw} == {
        ("v4", "v1", "FORWARD", "action"), ("v4", "v2", "FORWARD", "action"),
        ("v4", "v3", "FORWARD", "action")}
    sealed = [p for p in problems if p.subject == "SealedRecord"]
    assert sealed and all(p.field == "event.action" for p in sealed)


def test_float_field_fails_canonical_rule(schema_dir: Path) -> None:
    """A v4 adding an optional double is Avro-compatible but has no canonical bytes."""
    add_version(schema_dir, lambda s: s["fields"].append(
        {"name": "amount", "type": ["null", "double"], "default": None}))
    problems = schema_check.check_dir(schema_dir)
    assert [(p.subject, p.rule, p.field) for p in problems if p.rule != "FORWARD"] == [
        ("AuditEvent", "CANONICAL", "amount"),
        ("SealedRecord", "CANONICAL", "event.amount"),  # v1 and v2 of SealedRecord
        ("SealedRecord", "CANONICAL", "event.amount")]
    assert "canonical bytes have no form for float or double" in str(problems[0])


def test_gap_and_misnamed_file_are_reported(schema_dir: Path) -> None:
    """Versions must run 1..N and each file must hold the schema its name says."""
    (schema_dir / "AuditEvent.v5.avsc").write_text(
        (schema_dir / "SealedRecord.v1.avsc").read_text())
    rules = {(p.rule, p.version) for p in schema_check.check_dir(schema_dir)}
    assert ("NUMBERING", "v5") in rules
    assert ("NAMING", "v5") in rules


def test_unreadable_schema_file_is_a_usage_error(schema_dir: Path) -> None:
    """A file that is not JSON exits 2 and names the file."""
    (schema_dir / "AuditEvent.v3.avsc").write_text("{not json")
    result = run_cli("schemas", "check", "--dir", str(schema_dir))
    assert result.returncode == 2
    assert "AuditEvent.v3.avsc: not valid JSON" in result.stderr


# -- the compatibility table: schemas check and the registry agree ------------------------------


@dataclass(frozen=True)
class Case:
    """Two versions of a record and, per level, whether the second may follow the first."""

    name: str
    old: list[dict[str, Any]]
    new: list[dict[str, Any]]
    backward: bool
    forward: bool
    field: str = ""


def _rec(fields: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "record", "name": "R", "namespace": "t", "fields": fields}


S = {"name": "s", "type": "string"}
ENUM = {"type": "enum", "name": "E", "symbols": ["A", "B"]}
CASES = [
    Case("add optional", [S], [S, {"name": "o", "type": ["null", "string"], "default": None}],
         True, True),
    Case("add required", [S], [S, {"name": "r", "type": "string"}], False, True, "r"),
    Case("remove required", [S, {"name": "r", "type": "string"}], [S], True, False, "r"),
    Case("remove with default", [S, {"name": "d", "type": "string", "default": ""}], [S],
         True, True),
    Case("promote int to long", [{"name": "n", "type": "int"}], [{"name": "n", "type": "long"}],
         True, False, "n"),
    Case("widen union", [{"name": "u", "type": ["null", "string"], "default": None}],
         [{"name": "u", "type": ["null", "string", "long"], "default": None}], True, False,
         "u"),
    Case("enum adds symbol", [{"name": "e", "type": ENUM}],
         [{"name": "e", "type": {**ENUM, "symbols": ["A", "B", "C"]}}], True, False, "e"),
    Case("enum adds symbol with default", [{"name": "e", "type": {**ENUM, "default": "A"}}],
         [{"name": "e", "type": {**ENUM, "symbols": ["A", "B", "C"], "default": "A"}}],
         True, True),
    Case("fixed size", [{"name": "f", "type": {"type": "fixed", "name": "F", "size": 4}}],
         [{"name": "f", "type": {"type": "fixed", "name": "F", "size": 8}}], False, False, "f"),
    Case("array items", [{"name": "a", "type": {"type": "array", "items": "string"}}],
         [{"name": "a", "type": {"type": "array", "items": "long"}}], False, False, "a[]"),
    Case("map values", [{"name": "m", "type": {"type": "map", "values": "int"}}],
         [{"name": "m", "type": {"type": "map", "values": "long"}}], True, False, "m{}"),
    Case("nested record", [{"name": "n", "type": _rec([S]) | {"name": "N"}}],
         [{"name": "n", "type": _rec([S, {"name": "x", "type": "int"}]) | {"name": "N"}}],
         False, True, "n.x"),
    Case("rename with alias", [{"name": "old", "type": "string"}],
         [{"name": "new", "type": "string", "aliases": ["old"]}], True, False, "old"),
]
LEVELS = ["BACKWARD", "FORWARD", "FULL", "NONE"]


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    with RegistryServer() as server:
        yield server


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_check_agrees_with_the_registry(case: Case, registry: RegistryServer) -> None:
    """For each level (and its transitive form over three versions) `schemas check` finds
    a violation exactly when the registry refuses the version, and names the field."""
    client = registry_client(registry.url)
    for level in LEVELS:
        expected = {"BACKWARD": case.backward, "FORWARD": case.forward, "NONE": True,
                    "FULL": case.backward and case.forward}[level]
        for transitive in ((False, True) if level != "NONE" else (False,)):
            full_level = f"{level}_TRANSITIVE" if transitive else level
            history = [_rec(case.old), _rec(case.new)]
            if transitive:  # a harmless middle version: only the transitive check sees v1
                history.insert(1, _rec([*case.old, {"name": "zz", "type": ["null", "int"],
                                                    "default": None}]))
            subject = f"{case.name}-{full_level}".replace(" ", "_")
            client.set_compatibility(subject, full_level)
            accepted = True
            for schema in history:
                try:
                    client.register_schema(subject, Schema(json.dumps(schema), "AVRO"))
                except SchemaRegistryError as exc:
                    assert exc.http_status_code == 409
                    accepted = False
            found = schema_check.check_subject(schema_check.Subject(
                "R", full_level, tuple((f"v{i}", s) for i, s in enumerate(history, 1))))
            assert accepted is (not found), (full_level, [str(p) for p in found])
            assert accepted is expected, full_level
            if found and case.field:
                assert {p.field for p in found} == {case.field}, [str(p) for p in found]


# -- schemas register, and registry authentication ---------------------------------------------


@pytest.fixture
def secured() -> Iterator[RegistryServer]:
    """An embedded registry that requires a bearer token."""
    with RegistryServer(credentials=f"Bearer {TOKEN}") as server:
        yield server


def test_register_publishes_every_version_with_bearer_token(secured: RegistryServer) -> None:
    """`schemas register` sets each subject's level (FULL_TRANSITIVE for the raw topic,
    BACKWARD_TRANSITIVE for the sealed topic) and registers every version in order; a second
    run returns the same ids."""
    env = {"SEALTRAIL_REGISTRY_AUTH": f"Bearer {TOKEN}", "SEALTRAIL_RAW_TOPIC": "r",
           "SEALTRAIL_SEALED_TOPIC": "s"}
    first = run_cli("schemas", "register", "--registry", secured.url, "--json", env=env)
    assert first.returncode == 0, first.stderr
    published = json.loads(first.stdout)["published"]
    assert [(p["subject"], p["version"]) for p in published] == [
        ("r-value", 1), ("r-value", 2), ("r-value", 3), ("s-value", 1), ("s-value", 2),
        ("s-value", 3), ("s-value", 4), ("s-value", 5), ("s-value", 6)]
    again = run_cli("schemas", "register", "--registry", secured.url, "--json", env=env)
    assert json.loads(again.stdout)["published"] == published
    client = registry_client(secured.url, f"Bearer {TOKEN}")
    assert client.get_compatibility("r-value") == "FULL_TRANSITIVE"
    assert client.get_compatibility("s-value") == "BACKWARD_TRANSITIVE"
    latest = client.get_latest_version("r-value")
    assert json.loads(latest.schema.schema_str) == json.loads(
        json.dumps(schemas.load("AuditEvent", 3)))


def test_register_without_credentials_fails_without_leaking_them(
    secured: RegistryServer,
) -> None:
    """A wrong token is refused (exit 2) and no credential appears in the output."""
    env = {"SEALTRAIL_REGISTRY_AUTH": "Bearer wrong-token-123"}
    result = run_cli("schemas", "register", "--registry", secured.url, env=env)
    assert result.returncode == 2
    assert "40101" in result.stderr or "Unauthorized" in result.stderr
    assert "wrong-token-123" not in result.stderr + result.stdout


def test_register_refused_by_subject_history_exits_1(registry: RegistryServer) -> None:
    """A subject that already holds a version our schemas cannot follow makes register fail
    with exit 1, naming the subject."""
    client = registry_client(registry.url)
    alien = {"type": "record", "name": "AuditEvent", "namespace": "io.sealtrail",
             "fields": [{"name": "legacy", "type": "int"}]}
    client.register_schema("alien-value", Schema(json.dumps(alien), "AVRO"))
    result = run_cli("schemas", "register", "--registry", registry.url, "--no-level",
                     env={"SEALTRAIL_RAW_TOPIC": "alien"})
    assert result.returncode == 1
    assert "subject alien-value as incompatible" in result.stderr


def test_basic_auth_and_bearer_token_reach_the_registry() -> None:
    """The client sends basic credentials or a bearer token as configured; without them
    the registry answers 401."""
    for credentials in (BASIC, f"Bearer {TOKEN}"):
        with RegistryServer(credentials=credentials) as server:
            ok = registry_client(server.url, credentials)
            assert ok.register_schema("a-value", Schema('"string"', "AVRO")) == 1
            with pytest.raises(SchemaRegistryError) as info:
                registry_client(server.url).get_subjects()
            assert info.value.http_status_code == 401
            assert requests.get(server.url + "/subjects", timeout=5).status_code == 401


def test_auth_configuration_errors_and_safe_urls() -> None:
    """Malformed credentials are a ConfigError that does not echo them; URLs lose userinfo."""
    with pytest.raises(ConfigError) as info:
        registry_client("http://127.0.0.1:1", "no-colon-secret")
    assert "no-colon-secret" not in str(info.value)
    with pytest.raises(ConfigError):
        registry_client("http://127.0.0.1:1", "Bearer ")
    assert safe_url("https://u:secret@reg.example:8081/x") == "https://reg.example:8081/x"
    assert safe_url("http://reg:8081") == "http://reg:8081"


def test_json_report_of_check() -> None:
    """`schemas check --json` lists the versions found and no violations."""
    result = run_cli("schemas", "check", "--json")
    doc = json.loads(result.stdout)
    assert doc == {"ok": True, "schemas": {"AuditEvent": [1, 2, 3], "SealedRecord": [1, 2]},
                   "violations": []}


def _sample(schema: Any, names: dict[str, Any]) -> Any:
    """A datum of ``schema`` that uses the last enum symbol and the last union branch (the
    ones a new version adds), so the tricky resolutions are exercised."""
    if isinstance(schema, list):
        return _sample(schema[-1], names)
    if isinstance(schema, str):
        if schema in names:
            return _sample(names[schema], names)
        return {"string": "x", "int": 7, "long": 7, "null": None}[schema]
    kind = schema["type"]
    if kind in ("record", "enum", "fixed"):
        names[schema["name"]] = schema
    if kind == "record":
        return {f["name"]: _sample(f["type"], names) for f in schema["fields"]}
    if kind == "enum":
        return schema["symbols"][-1]
    if kind == "fixed":
        return b"\x01" * schema["size"]
    if kind == "array":
        return [_sample(schema["items"], names)]
    if kind == "map":
        return {"k": _sample(schema["values"], names)}
    return _sample(kind, names)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_sealer_decoder_reads_whatever_the_level_allows(case: Case) -> None:
    """fastavro's resolution (what the sealer decodes with) accepts every writer/reader pair
    that Avro's checker (what the registry and `schemas check` use) calls compatible."""
    from sealtrail.core.avro import AvroCodec

    old, new = AvroCodec(_rec(case.old)), AvroCodec(_rec(case.new))
    pairs = [(new, old)] if case.backward else []
    pairs += [(old, new)] if case.forward else []
    for reader, writer in pairs:
        datum = _sample(writer.schema, {})
        decoded = reader.decode(writer.encode(datum), writer)
        assert set(decoded) == {f["name"] for f in reader.schema["fields"]}
