"""Privacy at the tools: custody_required, forget's reason, secrets in URLs, control
characters on the terminal, 0600 outputs, and the DLQ's encryption format."""

from __future__ import annotations

import copy
import json
import stat
from pathlib import Path

import pytest
from helpers.archive_builder import make_event
from helpers.privacy_checks import cli

from sealtrail.config import Settings, load_settings
from sealtrail.errors import ConfigError, DataError, KeyMaterialError
from sealtrail.keys import DLQ_KEY, init_keys
from sealtrail.keys.subject import LocalKeyStore, SubjectEncryptor
from sealtrail.pipeline.dlq import DlqCipher, DlqKeys, rotate_dlq_key
from sealtrail.search import open_index, row_from_record

HOSTILE = "\x1b[2K\r\x1b[32mOK all clear\u202e"


def _offline(tmp_path: Path, **changes: object) -> Settings:
    """Settings with no broker: the tools cannot record custody."""
    home = tmp_path / "home"
    init_keys(home / "keys")
    return Settings(home=home, bootstrap="127.0.0.1:1", registry_url="http://127.0.0.1:1",
                    index_url=str(tmp_path / "index.sqlite"), **changes)  # type: ignore[arg-type]


def _index_with(tmp_path: Path, *events: dict[str, object]) -> Path:
    path = tmp_path / "index.sqlite"
    index = open_index(str(path))
    rows = []
    for seq, event in enumerate(events):
        record = {"chain_id": "audit.raw.0.00000000000000aa", "seq": seq,
                  "ingested_at": 1_700_000_000_000_000, "event": event}
        rows.append(row_from_record(record, 0))
    index.add(rows)  # type: ignore[arg-type]
    index.close()
    return path


# -- custody_required -------------------------------------------------------

def test_custody_required_refuses_to_show_data_when_custody_cannot_be_recorded(
    tmp_path: Path,
) -> None:
    """With custody_required, a search whose custody event cannot be recorded prints
    nothing and exits 2; without it, the result is shown with a warning."""
    event = make_event(1, 0)
    _index_with(tmp_path, event)
    required = _offline(tmp_path, custody_required=True)
    proc = cli(tmp_path, required, "search", "", timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "custody_required is set, so nothing was handed out" in proc.stderr
    relaxed = _offline(tmp_path)
    proc = cli(tmp_path, relaxed, "search", "", timeout=120)
    assert proc.returncode == 0 and event["actor"]["id"] in proc.stdout
    assert "chain of custody NOT recorded" in proc.stderr


def test_custody_required_is_a_boolean_setting() -> None:
    """custody_required reads true/false from the environment and refuses anything else."""
    assert load_settings(env={"SEALTRAIL_CUSTODY_REQUIRED": "true"}).custody_required is True
    assert load_settings(env={"SEALTRAIL_CUSTODY_REQUIRED": "0"}).custody_required is False
    assert load_settings(env={}).custody_required is False
    with pytest.raises(ConfigError, match="custody_required"):
        load_settings(env={"SEALTRAIL_CUSTODY_REQUIRED": "maybe"})


def test_custody_records_no_query_text() -> None:
    """The custody event's attributes hold the query's term names, never its values."""
    from sealtrail.custody import query_terms

    assert query_terms("actor:ada@example.com since:2026-01-01 login ada") == \
        "actor,since,text"
    assert query_terms("") == ""


# -- forget -------------------------------------------------------

def test_forget_refuses_a_reason_naming_the_subject_and_destroys_nothing(tmp_path: Path) -> None:
    """A --reason containing the subject (any case) is refused before the key is touched:
    the receipt is archived for good."""
    settings = _offline(tmp_path)
    store = LocalKeyStore(settings.keys)
    SubjectEncryptor(store).encrypt("Ada@Example.com", "1 Main St", path="attributes.a")
    proc = cli(tmp_path, settings, "forget", "Ada@Example.com", "--reason",
               "erasure request of ada@example.com", "--no-receipt")
    assert proc.returncode == 2
    assert "contains the subject" in proc.stderr and "Nothing was destroyed" in proc.stderr
    assert "example.com" not in proc.stderr
    assert store.forget("Ada@Example.com"), "the key was destroyed by the refused command"


# -- secrets in URLs -------------------------------------------------------

@pytest.mark.parametrize(("url", "secret"), [
    ("postgresql://audit:s3cret-pw@db:5432/trail", "s3cret-pw"),
    ("postgresql://audit@db/trail?password=s3cret-pw&sslmode=require", "s3cret-pw"),
    ("postgresql://db/trail?sslpassword=s3cret-pw", "s3cret-pw"),
    ("https://registry:8081/?access_token=s3cret-pw", "s3cret-pw"),
    ("https://bucket.s3.amazonaws.com/k?X-Amz-Signature=s3cret-pw&X-Amz-Date=1", "s3cret-pw"),
    ("https://user:p%40ss-s3cret@registry:8081", "s3cret"),
])
def test_config_show_masks_secrets_in_every_url_form(tmp_path: Path, url: str,
                                                     secret: str) -> None:
    """`config show` (text and JSON) masks URL passwords and password-like query
    parameters, and keeps the rest of the URL readable."""
    settings = Settings(home=tmp_path, index_url=url, registry_url=url)
    for args in (("config", "show"), ("config", "show", "--json")):
        proc = cli(tmp_path, settings, *args)
        assert proc.returncode == 0, proc.stderr
        assert secret not in proc.stdout and "********" in proc.stdout
    doc = json.loads(cli(tmp_path, settings, "config", "show", "--json").stdout)
    assert doc["index_url"].split("//")[0] == url.split("//")[0]


def test_connection_errors_do_not_print_the_index_password(tmp_path: Path) -> None:
    """A PostgreSQL index that cannot be reached is named without its password."""
    pytest.importorskip("psycopg")
    settings = Settings(home=tmp_path,
                        index_url="postgresql://audit:s3cret-pw@127.0.0.1:1/trail"
                                  "?password=s3cret-pw&connect_timeout=2")
    proc = cli(tmp_path, settings, "index", "status")
    assert proc.returncode == 2
    assert "PostgreSQL index" in proc.stderr and "s3cret-pw" not in proc.stderr


# -- the terminal -------------------------------------------------------

def test_search_escapes_control_characters(tmp_path: Path) -> None:
    """Event text with terminal escapes (clear line, carriage return, colour, bidi
    override) is printed escaped, in the table and everywhere on stdout."""
    event = copy.deepcopy(make_event(1, 0))
    event["actor"]["id"] = "u-1" + HOSTILE
    event["resource"]["id"] = HOSTILE
    _index_with(tmp_path, event)
    proc = cli(tmp_path, _offline(tmp_path), "search", "")
    assert proc.returncode == 0, proc.stderr
    for raw in ("\x1b", "\r", "\u202e"):
        assert raw not in proc.stdout and raw not in proc.stderr
    assert "\\x1b[2K\\x0d\\x1b[32mOK all clear\\u202e" in proc.stdout
    proc = cli(tmp_path, _offline(tmp_path), "search", "", "--json")
    assert "\x1b" not in proc.stdout
    assert json.loads(proc.stdout.splitlines()[0])["actor"] == "u-1" + HOSTILE


# -- files -------------------------------------------------------

def test_the_index_file_is_created_0600(tmp_path: Path) -> None:
    """index.sqlite and its WAL are readable by their owner only."""
    _index_with(tmp_path, make_event(1, 0))
    created = list(tmp_path.glob("index.sqlite*"))
    assert created
    for path in created:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


# -- the DLQ format -------------------------------------------------------

def test_dead_letters_decrypt_only_with_their_key_and_coordinates(tmp_path: Path) -> None:
    """A dead letter decrypts to the raw key and value under dlq.key; moved to other
    coordinates, altered, or read with another keys directory, it does not."""
    init_keys(tmp_path / "keys")
    assert stat.S_IMODE((tmp_path / "keys" / DLQ_KEY).stat().st_mode) == 0o600
    cipher = DlqCipher.for_keys(tmp_path / "keys")
    where = {"topic": "audit.raw", "partition": 2, "offset": 41}
    value = cipher.seal(b"ada@example.com", b"\x00raw CNRY bytes", **where)
    headers = cipher.headers(reason="INVALID", chain_id="audit.raw.2.x", seq=7, **where)
    assert b"CNRY" not in value and b"ada" not in value
    letter = DlqKeys(tmp_path / "keys").open(value, headers)
    assert (letter.key, letter.value, letter.reason, letter.seq) == (
        b"ada@example.com", b"\x00raw CNRY bytes", "INVALID", 7)
    with pytest.raises(DataError, match="does not decrypt"):
        DlqKeys(tmp_path / "keys").open(value, {**headers, "source_offset": "42"})
    with pytest.raises(DataError, match="does not decrypt"):
        DlqKeys(tmp_path / "keys").open(value[:-1] + bytes([value[-1] ^ 1]), headers)
    with pytest.raises(DataError, match="not encrypted"):
        DlqKeys(tmp_path / "keys").open(b"plain raw bytes", headers)
    init_keys(tmp_path / "other")
    with pytest.raises(KeyMaterialError, match="does not hold"):
        DlqKeys(tmp_path / "other").open(value, headers)
    none = DlqCipher.for_keys(tmp_path / "keys").seal(None, None, **where)
    assert DlqKeys(tmp_path / "keys").open(none, headers).value is None


def test_rotated_dlq_keys_still_read_older_letters(tmp_path: Path) -> None:
    """After `dlq rotate-key`, letters of the old key stay readable (retired/), new ones
    use the new key."""
    init_keys(tmp_path / "keys")
    where = {"topic": "t", "partition": 0, "offset": 1}
    headers = {"reason": "OVERSIZE", "chain_id": "c", "seq": "1", "source_topic": "t",
               "source_partition": "0", "source_offset": "1"}
    old = DlqCipher.for_keys(tmp_path / "keys").seal(b"k", b"v1", **where)
    old_id, new_id = rotate_dlq_key(tmp_path / "keys")
    new_cipher = DlqCipher.for_keys(tmp_path / "keys")
    assert new_cipher.key_id == new_id != old_id
    new = new_cipher.seal(b"k", b"v2", **where)
    keys = DlqKeys(tmp_path / "keys")
    assert keys.open(old, headers).value == b"v1" and keys.open(new, headers).value == b"v2"


def test_replay_outputs_are_0600_and_custody_required_writes_nothing(tmp_path: Path) -> None:
    """Replays to JSON lines, Avro and Parquet create their outputs, journals and state
    files 0600; with custody_required and no broker, replay refuses before writing."""
    from helpers.archive_builder import build_archive

    built = build_archive(tmp_path)
    settings = _offline(tmp_path, archive_url=str(built.root))
    keyring = tmp_path / "keys" / "public.json"
    outputs = []
    for name in ("r.jsonl", "r.avro", "r.parquet"):
        out = tmp_path / "out" / name
        out.parent.mkdir(exist_ok=True)
        proc = cli(tmp_path, settings, "replay", "--to", f"file:{out}", "--keys", keyring)
        assert proc.returncode == 0, proc.stderr
        outputs += [out, *out.parent.glob(name + ".*")]
    assert len(outputs) >= 6  # outputs and their state files
    assert {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in outputs} == {
        str(p): "0o600" for p in outputs}
    required = _offline(tmp_path, archive_url=str(built.root), custody_required=True)
    refused = tmp_path / "out" / "refused.jsonl"
    proc = cli(tmp_path, required, "replay", "--to", f"file:{refused}", "--keys", keyring)
    assert proc.returncode == 2
    assert "custody_required is set" in proc.stderr and not refused.exists()


def test_a_keys_directory_that_cannot_take_dlq_key_is_a_clear_error(tmp_path: Path) -> None:
    """A sealer whose keys directory cannot take the new dlq.key (read-only, or as here
    not a directory at all) says what to do instead of failing with a traceback."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"no dlq\.key in .*`sealtrail keys init`"):
        DlqCipher.for_keys(blocker / "keys")
