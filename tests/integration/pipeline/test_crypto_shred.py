"""Crypto-shredding: subject data keys in the embedded key store, the enc:v1 field
format, decrypt_event, and `sealtrail forget` end to end on the real stack."""

from __future__ import annotations

import base64
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.pipeline_checks import archived_records, store_of, verify, wait_until
from helpers.stages import Stage, with_settings

from sealtrail.config import Settings
from sealtrail.keys import init_keys
from sealtrail.keys.subject import (
    LocalKeyStore,
    SubjectEncryptor,
    decrypt_event,
    decrypt_value,
    encrypted_key_id,
)
from sealtrail.producers import AuditClient


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    init_keys(tmp_path / "keys")
    return tmp_path / "keys"


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
            for p in root.rglob("*")}


def test_data_keys_are_private_and_never_name_the_subject(keys: Path) -> None:
    """Data keys are wrapped, files 0600 and directories 0700, and no file name or
    content holds the subject or the raw data key."""
    store = LocalKeyStore(keys)
    key_id, key = store.data_key_for("alice@example.com")
    assert store.data_key_for("alice@example.com") == (key_id, key)
    assert LocalKeyStore(keys).data_key(key_id) == key  # another process unwraps it
    for name, mode in _modes(keys).items():
        path = keys / name
        assert mode == (0o700 if path.is_dir() else 0o600) or name.endswith(".generation") \
            or name == "public.json", (name, oct(mode))
        assert "alice" not in name
        if path.is_file():
            data = path.read_bytes()
            assert b"alice" not in data and key not in data
            assert base64.b64encode(key) not in data


def test_field_format_and_binding(keys: Path) -> None:
    """Encrypted fields read enc:v1:<key id>:<base64>; they decrypt only at the path and
    under the key id they were made for, and not after tampering."""
    store = LocalKeyStore(keys)
    value = SubjectEncryptor(store).encrypt("u-1", "1 Main St", path="attributes.address")
    prefix, version, key_id, body = value.split(":")
    assert (prefix, version) == ("enc", "v1") and encrypted_key_id(value) == key_id
    assert len(base64.b64decode(body)) == 12 + len("1 Main St") + 16
    assert decrypt_value(value, "attributes.address", store) == "1 Main St"
    assert decrypt_value(value, "attributes.note", store) is None
    other_id, _ = store.data_key_for("u-2")
    assert decrypt_value(value.replace(key_id, other_id), "attributes.address", store) is None
    flipped = base64.b64decode(body)
    flipped = flipped[:-1] + bytes([flipped[-1] ^ 1])
    tampered = f"enc:v1:{key_id}:{base64.b64encode(flipped).decode()}"
    assert decrypt_value(tampered, "attributes.address", store) is None
    assert encrypted_key_id("enc:v1:../../etc:AAAA") is None


def test_forget_destroys_the_key_and_running_processes_notice(keys: Path) -> None:
    """forget removes the wrapped key and the subject index and leaves a tombstone; a
    running process drops its cached key and gives the subject a new one."""
    running = LocalKeyStore(keys, check_interval=0.0)
    enc = SubjectEncryptor(running)
    before = enc.encrypt("u-1", "secret", path="reason")
    old_id = encrypted_key_id(before)
    assert old_id is not None
    destroyed = LocalKeyStore(keys).forget("u-1")
    assert destroyed == [old_id]
    assert not (keys / "data-keys" / f"{old_id}.json").exists()
    assert running.is_erased(old_id)
    assert running.data_key(old_id) is None
    assert decrypt_value(before, "reason", running) is None
    after = enc.encrypt("u-1", "secret", path="reason")
    assert encrypted_key_id(after) not in (None, old_id)
    assert decrypt_value(after, "reason", running) == "secret"
    assert LocalKeyStore(keys).forget("nobody") == []


def test_decrypt_event_leaves_shredded_fields_and_reports_them(keys: Path) -> None:
    """decrypt_event returns a decrypted copy; fields of a forgotten subject keep their
    ciphertext and are reported as unreadable; the input is not changed."""
    store = LocalKeyStore(keys)
    enc = SubjectEncryptor(store)
    event: dict[str, Any] = {
        "event_type": "crm.update", "actor": {"id": "u-1", "type": "user"},
        "resource": {"type": "customer", "id": enc.encrypt("u-2", "c-2", path="resource.id")},
        "attributes": {"address": enc.encrypt("u-1", "1 Main St", path="attributes.address"),
                       "plain": "enc:v1:not-really"},
    }
    snapshot = repr(event)
    assert decrypt_event(event, store)["attributes"]["address"] == "1 Main St"
    store.forget("u-1")
    unreadable: list[str] = []
    out = decrypt_event(event, LocalKeyStore(keys), unreadable=unreadable)
    assert out["resource"]["id"] == "c-2"
    assert out["attributes"]["address"] == event["attributes"]["address"]
    assert unreadable == ["attributes.address", "attributes.plain"]
    assert repr(event) == snapshot


def test_forget_without_a_broker_says_no_receipt_was_emitted(tmp_path: Path) -> None:
    """With no broker configured, forget still destroys the key but exits 2 saying that
    no erasure receipt was emitted; --no-receipt makes that explicit and exits 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALTRAIL_")}
    env["SEALTRAIL_HOME"] = str(tmp_path / "home")
    keys = tmp_path / "home" / "keys"
    init_keys(keys)
    key_id, _ = LocalKeyStore(keys).data_key_for("u-9")
    run = [sys.executable, "-m", "sealtrail.cli.main", "forget", "u-9"]
    proc = subprocess.run(run, capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert f"destroyed data key {key_id}" in proc.stdout
    assert "NO erasure receipt was emitted" in proc.stderr
    assert LocalKeyStore(keys).data_key(key_id) is None
    proc = subprocess.run([*run, "--no-receipt"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 0 and "no erasure receipt emitted" in proc.stdout


def _emit(settings: Settings, rows: list[tuple[str, str]]) -> None:
    with AuditClient.from_settings(settings, service="crm") as client:
        for actor, address in rows:
            client.emit("customer.update", "update", actor_id=actor,
                        resource_type="customer", resource_id=f"c-{actor}",
                        attributes={"address": address, "plan": "gold"})
        assert client.flush(30) == 0


def test_forget_end_to_end(settings: Settings, stages: list[Stage], tmp_path: Path) -> None:
    """Encrypted fields are sealed and archived as ciphertext and decrypt while the key
    exists; after `sealtrail forget` that subject's fields are unreadable in the archive,
    the archive still verifies, other subjects still decrypt, the erasure receipt is a
    sealed event naming only the subject ref, new events get a new key, and the sealer
    exports the encrypt count as a metric."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"id": "crm", "version": 1, "subject_field": "actor.id",
                                      "rules": [{"path": "attributes.address",
                                                 "action": "encrypt"}]}))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = with_settings(settings, policy_file=str(policy))
    assert isinstance(settings, Settings)
    stages.append(Stage(settings, "seal", tmp_path / "seal.log",
                        env={"SEALTRAIL_METRICS_PORT": str(port)}))
    stages.append(Stage(settings, "archive", tmp_path / "archive.log"))
    alive = lambda: all(s.alive() for s in stages)  # noqa: E731
    store = store_of(settings)
    _emit(settings, [(f"u-{i % 2}", f"{i} Secret Road u-{i % 2}") for i in range(20)])
    wait_until(lambda: len(archived_records(store)) >= 20, 60, "archive", alive)

    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    assert (b'sealtrail_redactions_total{action="encrypt",event_type="customer.update"} 20.0'
            in metrics)
    keystore = LocalKeyStore(settings.keys)
    records = archived_records(store)
    for r in records:
        address = r["event"]["attributes"]["address"]
        assert address.startswith("enc:v1:dk-")
        assert r["redaction"]["fields"] == ["attributes.address=encrypt"]
        plain = decrypt_event(r["event"], keystore)["attributes"]["address"]
        assert plain.endswith(f"Secret Road {r['event']['actor']['id']}")

    env = {**os.environ, **settings.to_env()}
    proc = subprocess.run([sys.executable, "-m", "sealtrail.cli.main", "forget", "u-1",
                           "--reason", "ticket-7", "--operator", "dpo-1"],
                          capture_output=True, text=True, env=env, timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert "erasure receipt" in proc.stdout
    time.sleep(1.5)  # the running sealer notices the erasure within check_interval
    _emit(settings, [("u-1", "new Secret Road u-1")])
    wait_until(lambda: len(archived_records(store)) >= 22, 60, "receipt archived", alive)

    records = archived_records(store)
    receipts = [r for r in records if r["event"]["event_type"] == "privacy.erasure"]
    assert len(receipts) == 1
    receipt = receipts[0]["event"]
    ref = keystore.subject_ref("u-1")
    assert receipt["resource"] == {"type": "data_subject", "id": ref}
    assert receipt["actor"]["id"] == "dpo-1" and receipt["attributes"]["reason"] == "ticket-7"
    assert receipt["attributes"]["keys_destroyed"] == "1"
    fresh = LocalKeyStore(settings.keys)
    readable = {}
    for r in records:
        if r["event"]["event_type"] != "customer.update":
            continue
        unreadable: list[str] = []
        out = decrypt_event(r["event"], fresh, unreadable=unreadable)
        readable[out["attributes"]["address"]] = not unreadable
    assert sum(1 for a, ok in readable.items() if ok and a.endswith("u-0")) == 10
    assert sum(1 for ok in readable.values() if not ok) == 10  # u-1's old events
    assert readable.get("new Secret Road u-1") is True
    for path in Path(settings.archive).rglob("*"):
        if path.is_file():
            assert b"Secret Road" not in path.read_bytes()

    for stage in stages:
        assert stage.stop() == 0, stage.output()
    report = verify(settings)
    assert report.ok, [str(f) for c in report.chains for f in c.findings]
