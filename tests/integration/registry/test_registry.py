"""The embedded schema registry over real HTTP: stock Confluent client, serdes and requests."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from sealtrail.registry import RegistryServer, _compat, _http

CT = "application/vnd.schemaregistry.v1+json"


def record(*fields: dict[str, Any], name: str = "Event") -> str:
    """An Avro record schema as JSON text."""
    return json.dumps(
        {"type": "record", "name": name, "namespace": "sealtrail.test", "fields": list(fields)}
    )


def enum_record(*symbols: str) -> str:
    return record({"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": symbols}})


A_INT = {"name": "a", "type": "int"}
A_LONG = {"name": "a", "type": "long"}
B_STR = {"name": "b", "type": "string"}
B_STR_DEFAULT = {"name": "b", "type": "string", "default": ""}
V1 = record(A_INT)
V2 = record(A_INT, B_STR_DEFAULT)


@pytest.fixture
def server() -> Iterator[RegistryServer]:
    with RegistryServer() as srv:
        yield srv


@pytest.fixture
def client(server: RegistryServer) -> Iterator[SchemaRegistryClient]:
    with SchemaRegistryClient({"url": server.url}) as sr:
        yield sr


def post(server: RegistryServer, path: str, body: Any) -> requests.Response:
    return requests.post(server.url + path, json=body, headers={"Content-Type": CT}, timeout=10)


def register(server: RegistryServer, subject: str, schema: str) -> requests.Response:
    return post(server, f"/subjects/{subject}/versions", {"schema": schema})


def assert_error(resp: requests.Response, status: int, code: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/")
    body = resp.json()
    assert body["error_code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body


# -- stock Confluent client and serdes -----------------------------------------------------------


def test_avro_serializer_roundtrip_with_auto_registration(server: RegistryServer) -> None:
    schema = record(
        A_INT, {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}
    )
    ctx = SerializationContext("audit", MessageField.VALUE)
    value = {"a": 7, "at": datetime(2024, 5, 1, 12, 0, tzinfo=UTC)}
    with SchemaRegistryClient({"url": server.url}) as sr:
        payload = AvroSerializer(sr, schema)(value, ctx)
    assert payload is not None and payload[0] == 0
    schema_id = int.from_bytes(payload[1:5], "big")

    with SchemaRegistryClient({"url": server.url}) as fresh:  # no cache: schema comes over HTTP
        assert AvroDeserializer(fresh)(payload, ctx) == value
        latest = fresh.get_latest_version("audit-value")
        assert (latest.schema_id, latest.version, latest.subject) == (schema_id, 1, "audit-value")
        # a second serializer for the same schema reuses the registered id
        assert AvroSerializer(fresh, schema)(value, ctx) == payload


def test_client_api(client: SchemaRegistryClient) -> None:
    sid = client.register_schema("orders-value", Schema(V1, "AVRO"))
    assert client.register_schema("orders-value", Schema(V1, "AVRO")) == sid
    # identical schema under another subject shares the id
    assert client.register_schema("other-value", Schema(V1, "AVRO")) == sid
    sid2 = client.register_schema("orders-value", Schema(V2, "AVRO"))
    assert sid2 != sid

    assert client.get_version("orders-value", 1).schema_id == sid
    latest = client.get_latest_version("orders-value")
    assert (latest.version, latest.schema_id) == (2, sid2)
    assert json.loads(latest.schema.schema_str) == json.loads(V2)
    found = client.lookup_schema("orders-value", Schema(V1, "AVRO"))
    assert (found.version, found.schema_id) == (1, sid)
    assert client.get_versions("orders-value") == [1, 2]
    assert client.get_subjects() == ["orders-value", "other-value"]
    assert sorted(client.get_subjects_by_schema_id(sid)) == ["orders-value", "other-value"]
    assert client.get_schema(sid2).schema_str is not None

    assert client.test_compatibility("orders-value", Schema(record(A_INT, B_STR), "AVRO"))
    assert not client.test_compatibility(
        "orders-value", Schema(record(A_INT, B_STR, name="X"), "AVRO")
    )
    assert client.test_compatibility_all_versions("orders-value", Schema(V2, "AVRO"))

    assert client.get_compatibility() == "BACKWARD"
    client.set_compatibility("orders-value", "FULL")
    assert client.get_compatibility("orders-value") == "FULL"
    client.set_compatibility(level="NONE")
    assert client.get_compatibility() == "NONE"

    with pytest.raises(SchemaRegistryError) as exc:
        client.register_schema("orders-value", Schema(record(A_LONG, B_STR_DEFAULT), "AVRO"))
    assert exc.value.http_status_code == 409

    assert client.delete_subject("orders-value") == [1, 2]
    assert client.get_subjects() == ["other-value"]
    assert "orders-value" in client.get_subjects(deleted=True)
    assert client.delete_subject("orders-value", permanent=True) == [1, 2]
    assert "orders-value" not in client.get_subjects(deleted=True)
    with pytest.raises(SchemaRegistryError) as exc:
        client.get_versions("orders-value")
    assert exc.value.error_code == 40401


def test_sealtrail_schemas_register(client: SchemaRegistryClient) -> None:
    from sealtrail import schemas

    event = json.dumps(schemas.load(schemas.AUDIT_EVENT))
    sealed = json.dumps(schemas.sealed_record())
    event_id = client.register_schema("audit.raw-value", Schema(event, "AVRO"))
    sealed_id = client.register_schema("audit.sealed-value", Schema(sealed, "AVRO"))
    assert event_id != sealed_id
    assert client.lookup_schema("audit.sealed-value", Schema(sealed, "AVRO")).version == 1


def test_associations_endpoint_is_a_clean_404(server: RegistryServer) -> None:
    resp = requests.get(
        server.url + "/associations/resources/-/audit?resourceType=topic", timeout=5
    )
    assert_error(resp, 404, 404)


# -- raw HTTP: error codes and bounds ------------------------------------------------------------


def test_error_codes(server: RegistryServer) -> None:
    assert register(server, "s", V1).status_code == 200
    assert_error(requests.get(server.url + "/no/such/thing", timeout=5), 404, 404)
    assert_error(requests.delete(server.url + "/schemas/ids/1", timeout=5), 405, 405)
    assert_error(requests.patch(server.url + "/subjects", timeout=5), 501, 501)
    assert_error(requests.get(server.url + "/subjects/nope/versions", timeout=5), 404, 40401)
    assert_error(requests.get(server.url + "/subjects/nope/versions/1", timeout=5), 404, 40401)
    assert_error(requests.get(server.url + "/subjects/s/versions/9", timeout=5), 404, 40402)
    assert_error(requests.get(server.url + "/subjects/s/versions/zero", timeout=5), 422, 42202)
    assert_error(requests.get(server.url + "/subjects/s/versions/0", timeout=5), 422, 42202)
    assert_error(requests.get(server.url + "/schemas/ids/999", timeout=5), 404, 40403)
    assert_error(requests.get(server.url + "/schemas/ids/x", timeout=5), 404, 40403)
    assert_error(post(server, "/subjects/s", {"schema": V2}), 404, 40403)
    assert_error(post(server, "/subjects/nope", {"schema": V1}), 404, 40401)
    assert_error(register(server, "s", "{not json"), 422, 42201)
    assert_error(register(server, "s", '{"type": "recordx"}'), 422, 42201)
    assert_error(register(server, "s", json.dumps({"type": "record", "name": "R"})), 422, 42201)
    assert_error(
        post(server, "/subjects/s/versions", {"schema": V1, "schemaType": "JSON"}), 422, 42201
    )
    assert_error(post(server, "/subjects/s/versions", {"nothing": 1}), 422, 42201)
    huge_union = json.dumps([{"type": "fixed", "name": f"F{i}", "size": 1} for i in range(300)])
    assert "too complex" in assert_error(register(server, "s", huge_union), 422, 42201)["message"]
    assert_error(post(server, "/subjects/s/versions", ["not", "an", "object"]), 422, 422)
    body = assert_error(register(server, "s", record(A_INT, B_STR)), 409, 409)
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in body["message"]
    resp = requests.put(server.url + "/config", json={"compatibility": "SIDEWAYS"}, timeout=5)
    assert_error(resp, 422, 42203)
    assert_error(requests.put(server.url + "/mode", json={"mode": "NAP"}, timeout=5), 422, 42204)
    assert_error(requests.get(server.url + "/config/s", timeout=5), 404, 40408)


def test_malformed_and_oversize_bodies(server: RegistryServer) -> None:
    url = server.url + "/subjects/s/versions"
    for bad in (b"{", b'{"schema": ', b"\xff\xfe", b"[" * 100_000, b""):
        resp = requests.post(url, data=bad, headers={"Content-Type": CT}, timeout=5)
        assert resp.status_code in (400, 422), resp.text
        assert resp.json()["error_code"] in (400, 422)
    deep = json.dumps({"schema": "[" * 50_000 + "]" * 50_000})
    assert_error(requests.post(url, data=deep, headers={"Content-Type": CT}, timeout=5), 422, 42201)
    big = json.dumps({"schema": json.dumps({"type": "string", "doc": "x" * (1024 * 1024)})})
    resp = requests.post(url, data=big, headers={"Content-Type": CT}, timeout=10)
    assert_error(resp, 413, 413)
    # the server is still healthy afterwards
    assert requests.get(server.url + "/subjects", timeout=5).json() == []


def test_stalled_client_times_out_and_does_not_block_others(
    server: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_http.RegistryHandler, "timeout", 0.5)
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as stalled:
        stalled.sendall(b"POST /subjects/s/versions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        assert requests.get(server.url + "/subjects", timeout=5).status_code == 200
        start = time.monotonic()
        while stalled.recv(4096):  # the server gives up on us and closes the connection
            pass
        assert time.monotonic() - start < 5


def test_readonly_mode(server: RegistryServer) -> None:
    assert register(server, "s", V1).status_code == 200
    assert requests.put(server.url + "/mode", json={"mode": "READONLY"}, timeout=5).json() == {
        "mode": "READONLY"
    }
    assert_error(register(server, "s", V2), 422, 42205)
    assert_error(requests.delete(server.url + "/subjects/s", timeout=5), 422, 42205)
    # reads, lookups and compatibility checks still work
    assert post(server, "/subjects/s", {"schema": V1}).json()["version"] == 1
    assert post(server, "/compatibility/subjects/s/versions/latest", {"schema": V2}).json() == {
        "is_compatible": True
    }
    # a subject-level mode overrides the global one
    requests.put(server.url + "/mode/s", json={"mode": "READWRITE"}, timeout=5)
    assert requests.get(server.url + "/mode/s", timeout=5).json() == {"mode": "READWRITE"}
    assert register(server, "s", V2).status_code == 200
    assert_error(register(server, "t", V1), 422, 42205)
    assert_error(requests.get(server.url + "/mode/t", timeout=5), 404, 40409)
    resp = requests.get(server.url + "/mode/t?defaultToGlobal=true", timeout=5)
    assert resp.json() == {"mode": "READONLY"}


def test_config_endpoints(server: RegistryServer) -> None:
    url = server.url
    assert requests.get(url + "/config", timeout=5).json() == {"compatibilityLevel": "BACKWARD"}
    resp = requests.put(url + "/config", json={"compatibility": "FULL_TRANSITIVE"}, timeout=5)
    assert resp.json() == {"compatibility": "FULL_TRANSITIVE"}
    resp = requests.put(url + "/config/s", json={"compatibility": "forward"}, timeout=5)
    assert resp.json() == {"compatibility": "FORWARD"}
    assert requests.get(url + "/config/s", timeout=5).json() == {"compatibilityLevel": "FORWARD"}
    assert requests.get(url + "/config/t?defaultToGlobal=true", timeout=5).json() == {
        "compatibilityLevel": "FULL_TRANSITIVE"
    }
    assert requests.delete(url + "/config/s", timeout=5).json() == {"compatibilityLevel": "FORWARD"}
    assert_error(requests.get(url + "/config/s", timeout=5), 404, 40408)


def test_compatibility_endpoints_and_verbose(server: RegistryServer) -> None:
    assert register(server, "s", V1).status_code == 200
    assert register(server, "s", V2).status_code == 200
    bad = record(A_INT, B_STR)
    resp = post(server, "/compatibility/subjects/s/versions/1?verbose=true", {"schema": bad})
    body = resp.json()
    assert body["is_compatible"] is False
    assert any("READER_FIELD_MISSING_DEFAULT_VALUE" in m for m in body["messages"])
    assert post(server, "/compatibility/subjects/s/versions/2", {"schema": bad}).json() == {
        "is_compatible": True
    }
    assert_error(post(server, "/compatibility/subjects/s/versions/7", {"schema": bad}), 404, 40402)
    assert_error(post(server, "/compatibility/subjects/x/versions/1", {"schema": bad}), 404, 40401)
    # nothing to be incompatible with yet
    assert post(server, "/compatibility/subjects/x/versions/latest", {"schema": bad}).json() == {
        "is_compatible": True
    }


def test_soft_and_hard_delete_versions(server: RegistryServer) -> None:
    sid1 = register(server, "s", V1).json()["id"]
    register(server, "s", V2)
    url = server.url + "/subjects/s/versions"
    assert requests.delete(url + "/1", timeout=5).json() == 1
    assert requests.get(url, timeout=5).json() == [2]
    assert requests.get(url + "?deleted=true", timeout=5).json() == [1, 2]
    assert_error(requests.get(url + "/1", timeout=5), 404, 40402)
    assert requests.get(url + "/1?deleted=true", timeout=5).json()["id"] == sid1
    assert requests.get(server.url + f"/schemas/ids/{sid1}", timeout=5).status_code == 200
    assert_error(requests.delete(url + "/1", timeout=5), 404, 40406)
    assert_error(requests.delete(url + "/2?permanent=true", timeout=5), 404, 40407)
    assert requests.delete(url + "/1?permanent=true", timeout=5).json() == 1
    assert_error(requests.get(server.url + f"/schemas/ids/{sid1}", timeout=5), 404, 40403)
    # re-registering a deleted schema gets a new version but keeps its id
    assert register(server, "s", V1).json() == {"id": sid1}
    assert requests.get(url, timeout=5).json() == [2, 3]


def test_concurrent_registrations_get_one_id(server: RegistryServer) -> None:
    schema = record(A_INT, {"name": "c", "type": "double", "default": 0.0}, name="Concurrent")
    barrier = threading.Barrier(16)
    results: list[tuple[str, int, Any]] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            resp = register(server, f"subject-{i % 4}", schema)
            results.append((f"subject-{i % 4}", resp.status_code, resp.json()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and len(results) == 16
    assert {status for _, status, _ in results} == {200}
    assert len({body["id"] for _, _, body in results}) == 1
    for i in range(4):
        versions = requests.get(server.url + f"/subjects/subject-{i}/versions", timeout=5).json()
        assert versions == [1]


def test_state_survives_restart(tmp_path: Path) -> None:
    db = tmp_path / ".sealtrail" / "registry.db"
    with RegistryServer(db_path=db) as first:
        id1 = register(first, "s", V1).json()["id"]
        id2 = register(first, "s", V2).json()["id"]
        register(first, "t", V1)
        requests.put(first.url + "/config/s", json={"compatibility": "FULL"}, timeout=5)
        before = requests.get(first.url + "/subjects/s/versions/latest", timeout=5).json()
    with RegistryServer(db_path=db) as second:
        assert requests.get(second.url + "/subjects", timeout=5).json() == ["s", "t"]
        assert requests.get(second.url + "/subjects/s/versions/latest", timeout=5).json() == before
        assert requests.get(second.url + "/subjects/s/versions", timeout=5).json() == [1, 2]
        assert post(second, "/subjects/t", {"schema": V1}).json()["id"] == id1
        assert register(second, "s", V2).json() == {"id": id2}
        assert requests.get(second.url + "/config/s", timeout=5).json() == {
            "compatibilityLevel": "FULL"
        }
        id3 = register(second, "u", record(B_STR)).json()["id"]
        assert id3 == max(id1, id2) + 1


def test_quiet_by_default(server: RegistryServer, capfd: pytest.CaptureFixture[str]) -> None:
    register(server, "s", V1)
    requests.get(server.url + "/nothing-here", timeout=5)
    requests.post(server.url + "/subjects/s/versions", data=b"{", timeout=5)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_serve_blocks_logs_and_stops_on_sigterm(tmp_path: Path) -> None:
    code = "import sys; from sealtrail.registry import serve; serve('127.0.0.1', 0, sys.argv[1])"
    db = str(tmp_path / "registry.db")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, db],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], 30)
        assert ready, "serve() printed nothing within 30s"
        line = proc.stderr.readline()
        match = re.fullmatch(r"registry listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        assert requests.get(match.group(1) + "/subjects", timeout=5).json() == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


# -- compatibility levels, table-driven ----------------------------------------------------------

# One prior version: (name, history, new schema, accepted under BACKWARD/FORWARD/FULL, y/n).
# Each *_TRANSITIVE level must agree with its base level here, and NONE accepts everything.
SINGLE_STEP = [
    ("add-field-with-default", [V1], V2, "yyy"),
    ("add-field-no-default", [V1], record(A_INT, B_STR), "nyn"),
    ("remove-field-no-default", [record(A_INT, B_STR)], V1, "ynn"),
    ("remove-field-with-default", [V2], V1, "yyy"),
    ("promote-int-to-long", [V1], record(A_LONG), "ynn"),
    ("demote-long-to-int", [record(A_LONG)], V1, "nyn"),
    ("enum-symbol-added", [enum_record("A", "B")], enum_record("A", "B", "C"), "ynn"),
    ("enum-symbol-removed", [enum_record("A", "B")], enum_record("A"), "nyn"),
    ("rename-record", [V1], record(A_INT, name="Other"), "nnn"),
]
# Two prior versions, where only the older one objects: accepted under BACKWARD,
# BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE.
MULTI_STEP = [
    ("transitive-backward", [V1, V2], record(A_INT, B_STR), "ynyyyn"),
    ("transitive-forward", [record(A_INT, B_STR), V2], V1, "yyynyn"),
]


def _expected(flags: str) -> dict[str, bool]:
    """'y'/'n' per level in ``_compat.LEVELS`` order; 3 flags mean base level = transitive."""
    if len(flags) == 3:
        flags = "".join(f * 2 for f in flags)
    return {"NONE": True} | {
        lvl: f == "y" for lvl, f in zip(_compat.LEVELS[:6], flags, strict=True)
    }


LEVEL_CASES = [
    (name, hist, new, _expected(flags)) for name, hist, new, flags in SINGLE_STEP + MULTI_STEP
]
LEVEL_PARAMS = [
    pytest.param(hist, new, level, want[level], id=f"{name}-{level}")
    for name, hist, new, want in LEVEL_CASES
    for level in _compat.LEVELS
]


@pytest.mark.parametrize(("history", "new", "level", "accepted"), LEVEL_PARAMS)
def test_level_table_checker(history: list[str], new: str, level: str, accepted: bool) -> None:
    existing = [(i, _compat.parse_schema(s).schema) for i, s in enumerate(history, 1)]
    problems = _compat.check(level, _compat.parse_schema(new).schema, existing)
    assert (not problems) is accepted, problems


@pytest.fixture(scope="module")
def shared_server() -> Iterator[RegistryServer]:
    with RegistryServer() as srv:
        yield srv


@pytest.mark.parametrize(("history", "new", "level", "accepted"), LEVEL_PARAMS)
def test_level_table_over_http(
    shared_server: RegistryServer,
    request: pytest.FixtureRequest,
    history: list[str],
    new: str,
    level: str,
    accepted: bool,
) -> None:
    server, subject = shared_server, request.node.callspec.id
    requests.put(server.url + f"/config/{subject}", json={"compatibility": "NONE"}, timeout=5)
    for schema in history:
        assert register(server, subject, schema).status_code == 200
    resp = requests.put(server.url + f"/config/{subject}", json={"compatibility": level}, timeout=5)
    assert resp.json() == {"compatibility": level}
    check = post(server, f"/compatibility/subjects/{subject}/versions", {"schema": new})
    assert check.json()["is_compatible"] is accepted
    assert register(server, subject, new).status_code == (200 if accepted else 409)
