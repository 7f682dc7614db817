"""Keys: init, rotation with validity windows, signers and pseudonymizers that follow a
rotation without a restart, private key hygiene, and rotation under a running pipeline."""

from __future__ import annotations

import base64
import json
import logging
import stat
import time
from pathlib import Path

import pytest
from helpers.pipeline_checks import (
    archived_records,
    finish_producer,
    run_producer,
    store_of,
    verify,
    wait_until,
)
from helpers.stages import Stage

from sealtrail.cli.main import main
from sealtrail.config import Settings
from sealtrail.core.chain import ChainHead, seal
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.hashing import SIG_CHECKPOINT_DOMAIN, SIG_ENTRY_DOMAIN
from sealtrail.core.signing import Keyring, Signer
from sealtrail.errors import KeyMaterialError
from sealtrail.keys import (
    HMAC_KEY,
    PUBLIC_KEYRING,
    SIGNING_KEY,
    ReloadingPseudonymizer,
    ReloadingSigner,
    init_keys,
    load_keyring,
    load_signer,
    rotate_hmac_key,
    rotate_signing_key,
)

T0 = 1_700_000_000_000_000


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _unsealed(ingested_at: int) -> dict[str, object]:
    return {"kind": "REJECTION", "event": None,
            "rejection": {"reason": "UNDECODABLE", "detail": "x", "raw_sha256": bytes(32),
                          "raw_size": 0},
            "redaction": {"policy_id": "p", "policy_version": 1, "fields": []},
            "ingested_at": ingested_at,
            "source": {"topic": "raw", "partition": 0, "offset": 0, "schema_id": None}}


def test_init_writes_private_files_and_keeps_existing_keys(tmp_path: Path) -> None:
    """keys init creates signing, HMAC and master keys with mode 0600 in a 0700 directory
    and a public keyring for the signing key; a second init keeps them."""
    keys = tmp_path / "keys"
    signer, created = init_keys(keys)
    assert created and _mode(keys) == 0o700
    for name in (SIGNING_KEY, HMAC_KEY, "master.key"):
        assert _mode(keys / name) == 0o600
    assert list(load_keyring(keys / PUBLIC_KEYRING).keys) == [signer.key_id]
    again, created = init_keys(keys)
    assert not created and again.key_id == signer.key_id


def test_keep_retired_writes_it_encrypted_and_only_with_a_passphrase(tmp_path: Path) -> None:
    """--keep-retired keeps the old seed only encrypted (PKCS#8 PEM, 0600), readable back
    with the passphrase alone; a short passphrase is refused before anything changes."""
    from sealtrail.errors import ConfigError, KeyMaterialError
    from sealtrail.keys.retire import load_encrypted

    keys = tmp_path / "keys"
    old, _ = init_keys(keys)
    with pytest.raises(ConfigError, match="at least 12"):
        rotate_signing_key(keys, keep_passphrase=b"short")
    assert load_signer(keys).key_id == old.key_id  # nothing rotated
    rotation = rotate_signing_key(keys, keep_passphrase=b"correct horse battery")
    assert rotation.retired_file is not None and _mode(rotation.retired_file) == 0o600
    data = rotation.retired_file.read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    seed = old._key.private_bytes_raw()
    assert base64.b64encode(seed) not in data and seed not in data
    assert load_encrypted(rotation.retired_file, b"correct horse battery") == seed
    with pytest.raises(KeyMaterialError, match="wrong passphrase"):
        load_encrypted(rotation.retired_file, b"wrong horse battery")


def test_rotation_warns_of_retired_keys_left_in_clear(tmp_path: Path) -> None:
    """A retired signing key an earlier version kept in clear is named by the next
    rotation (it can still sign backdated evidence)."""
    keys = tmp_path / "keys"
    init_keys(keys)
    from sealtrail.keys import SIGNING_KEY, read_private, write_private

    write_private(keys / "retired" / "ed25519_0000.key", read_private(keys / SIGNING_KEY))
    rotation = rotate_signing_key(keys)
    assert rotation.plaintext_retired == (keys / "retired" / "ed25519_0000.key",)


def test_rotation_sets_windows_and_retires_the_old_key(tmp_path: Path) -> None:
    """After rotate, the new key is valid from the rotation instant and the old one until
    it plus the grace period; the retired private seed is destroyed (no file anywhere in
    the keys directory holds it); old signatures made in the window verify, and nothing
    either key signs outside its window does."""
    keys = tmp_path / "keys"
    old, _ = init_keys(keys)
    at = T0 + 5_000_000
    rotation = rotate_signing_key(keys, grace_s=2.0, now_us=at)
    new = load_signer(keys)
    assert (rotation.old_key_id, rotation.new_key_id) == (old.key_id, new.key_id)
    doc = json.loads((keys / PUBLIC_KEYRING).read_text())
    assert doc["format"] == "sealtrail-keyring/v1"
    keyring = Keyring.from_json(doc)
    assert keyring.keys[old.key_id].not_after == at + 2_000_000
    assert keyring.keys[new.key_id].not_before == at
    assert keyring.keys[new.key_id].not_after is None
    assert rotation.retired_file is None
    old_seed = base64.b64encode(old._key.private_bytes_raw()).decode()
    for path in keys.rglob("*"):
        if path.is_file():
            assert old_seed.encode() not in path.read_bytes(), path
    msg = SIG_ENTRY_DOMAIN + bytes(32)
    assert keyring.verify(old.key_id, msg, old.sign(msg), at_us=at + 2_000_000) is None
    assert "outside its validity window" in (
        keyring.verify(old.key_id, msg, old.sign(msg), at_us=at + 2_000_001) or "")
    assert keyring.verify(new.key_id, msg, new.sign(msg), at_us=at) is None
    assert "outside its validity window" in (
        keyring.verify(new.key_id, msg, new.sign(msg), at_us=at - 1) or "")
    second = rotate_signing_key(keys, grace_s=0, now_us=at + 10_000_000)
    keyring = load_keyring(keys / PUBLIC_KEYRING)
    assert len(keyring.keys) == 3
    assert keyring.keys[old.key_id].not_after == at + 2_000_000  # never extended
    assert keyring.keys[second.old_key_id].not_after == at + 10_000_000


def test_reloading_signer_switches_keys_between_statements(tmp_path: Path) -> None:
    """A ReloadingSigner picks up a rotated key at its next check, only between reading
    key_id and signing, so every entry and checkpoint names the key that signed it and a
    chain spanning the rotation verifies against the rotated keyring."""
    keys = tmp_path / "keys"
    init_keys(keys)
    clock = FakeClock()
    signer = ReloadingSigner(keys, check_interval=1.0, clock=clock)
    as_protocol: Signer = signer
    head = ChainHead.genesis("raw.0.k")
    records = []
    for i in range(3):
        records.append(seal(head, _unsealed(T0 + i), as_protocol))
        head = head.advance(records[-1])
    rotation = rotate_signing_key(keys, grace_s=0, now_us=T0 + 10)
    clock.now = 0.5  # not yet due: the old key still signs
    records.append(seal(head, _unsealed(T0 + 10), signer))
    head = head.advance(records[-1])
    clock.now = 1.5
    cp = Checkpoint(chain_id="raw.0.k", index=0, first_seq=0, last_seq=3,
                    segment_key="s", segment_sha256=bytes(32), segment_size=1,
                    merkle_root=bytes(32), head_hash=head.entry_hash,
                    prev_checkpoint_hash=bytes(32), created_at=T0 + 20,
                    key_id=signer.key_id)
    clock.now = 9.0  # a check falls between the statement and its signature: no switch
    signed = cp.sign(signer)
    assert signed.checkpoint.key_id == rotation.new_key_id and signer.reloads == 1
    records.append(seal(head, _unsealed(T0 + 30), signer))
    keyring = load_keyring(keys / PUBLIC_KEYRING)
    assert [r["key_id"] for r in records] == [rotation.old_key_id] * 4 + [rotation.new_key_id]
    for r in records:
        assert keyring.verify(r["key_id"], SIG_ENTRY_DOMAIN + r["entry_hash"], r["signature"],
                              at_us=r["ingested_at"]) is None
    assert keyring.verify(signed.checkpoint.key_id,
                          SIG_CHECKPOINT_DOMAIN + signed.checkpoint_hash, signed.signature,
                          at_us=signed.checkpoint.created_at) is None


def test_reloading_signer_keeps_its_key_when_the_new_file_is_bad(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A replaced signing.key that does not load leaves the current key in use and logs
    a warning that names the file but none of its content."""
    keys = tmp_path / "keys"
    old, _ = init_keys(keys)
    clock = FakeClock()
    signer = ReloadingSigner(keys, clock=clock)
    secret = base64.b64encode(b"\x07" * 32).decode()
    (keys / SIGNING_KEY).write_text(json.dumps({"key_id": "x", "seed": secret + "!"}))
    clock.now = 5.0
    with caplog.at_level(logging.WARNING, logger="sealtrail.keys"):
        assert signer.key_id == old.key_id
    assert "cannot be loaded" in caplog.text and secret not in caplog.text
    assert old.key_id in repr(signer) and secret not in repr(signer)


def test_key_files_readable_by_others_are_refused(tmp_path: Path) -> None:
    """A private key file with group or other permissions is refused, naming the file
    and the fix, never the key."""
    keys = tmp_path / "keys"
    init_keys(keys)
    (keys / SIGNING_KEY).chmod(0o640)
    seed = json.loads((keys / SIGNING_KEY).read_text())["seed"]
    with pytest.raises(KeyMaterialError, match="chmod 600") as caught:
        load_signer(keys)
    assert seed not in str(caught.value)


def test_hmac_rotation_is_followed_by_the_pseudonymizer(tmp_path: Path) -> None:
    """rotate-hmac retires the old HMAC key (0600) and a running pseudonymizer names the
    new key id in its pseudonyms after its next check."""
    keys = tmp_path / "keys"
    init_keys(keys)
    clock = FakeClock()
    pseudo = ReloadingPseudonymizer(keys, clock=clock)
    first = pseudo.pseudonym("alice")
    old_id, new_id = rotate_hmac_key(keys)
    assert first.startswith(f"hmac:{old_id}:") and pseudo.pseudonym("alice") == first
    clock.now = 2.0
    second = pseudo.pseudonym("alice")
    assert second.startswith(f"hmac:{new_id}:") and second != first
    assert _mode(keys / "retired" / f"{old_id}.key") == 0o600


def test_keys_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  capsys: pytest.CaptureFixture[str]) -> None:
    """keys init, rotate --hmac, rotate-hmac and export-public work from the command line
    and never print private key material."""
    keys = tmp_path / "keys"
    monkeypatch.setenv("SEALTRAIL_KEYS_DIR", str(keys))
    monkeypatch.chdir(tmp_path)
    assert main(["keys", "init"]) == 0
    seed = json.loads((keys / SIGNING_KEY).read_text())["seed"]
    assert main(["keys", "rotate", "--grace", "1", "--hmac"]) == 0
    assert main(["keys", "rotate-hmac"]) == 0
    assert main(["keys", "export-public"]) == 0
    out = capsys.readouterr().out
    exported = json.loads(out[out.index("{"):])
    assert len(exported["keys"]) == 2 and "signing key rotated" in out
    assert out.count("HMAC key rotated") == 2
    assert seed not in out and json.loads((keys / SIGNING_KEY).read_text())["seed"] not in out


def test_rotation_under_a_running_pipeline(settings: Settings, stages: list[Stage],
                                           tmp_path: Path) -> None:
    """Rotating the signing key while the sealer and archiver run needs no restart:
    records and checkpoints after the rotation carry the new key id, and the whole
    archive verifies against the rotated public keyring."""
    stages.append(Stage(settings, "seal", tmp_path / "seal.log"))
    stages.append(Stage(settings, "archive", tmp_path / "archive.log"))
    alive = lambda: all(s.alive() for s in stages)  # noqa: E731
    store = store_of(settings)
    first = finish_producer(run_producer(settings, "svc", 150, seed=1))["emitted"]
    wait_until(lambda: len(archived_records(store)) >= first, 60, "first half", alive)
    old_seed = json.loads((settings.keys / SIGNING_KEY).read_text())["seed"]
    rotation = rotate_signing_key(settings.keys)
    new_seed = json.loads((settings.keys / SIGNING_KEY).read_text())["seed"]
    time.sleep(1.5)  # the running stages check signing.key once a second
    second = finish_producer(run_producer(settings, "svc", 150, seed=2))["emitted"]
    wait_until(lambda: len(archived_records(store)) >= first + second, 60, "second half",
               alive)
    for stage in stages:
        assert stage.stop() == 0, stage.output()
    key_ids = {r["key_id"] for r in archived_records(store)}
    assert key_ids == {rotation.old_key_id, rotation.new_key_id}
    checkpoint_keys = {json.loads(p.read_text())["checkpoint"]["key_id"]
                       for p in Path(settings.archive).glob("chains/*/checkpoints/*.json")}
    assert rotation.new_key_id in checkpoint_keys
    report = verify(settings)
    assert report.ok, [str(f) for c in report.chains for f in c.findings]
    for stage in stages:
        assert f"signing key reloaded: {rotation.old_key_id} -> {rotation.new_key_id}" in (
            stage.output())
        assert old_seed not in stage.output() and new_seed not in stage.output()
