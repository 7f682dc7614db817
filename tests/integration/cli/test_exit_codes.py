"""Exit codes that never lie (G10): 1 only when evidence fails; a file that is not
what a checker checks, or cannot be read, is 2; a bug is 3, in one line (the traceback
only with --debug). Each crash the issue quotes, run as a real `sealtrail` process."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest
from helpers.archive_builder import keyring_of, signer, write_keyring

from sealtrail.cli.main import main

# The peak RSS of this process's own memory (VmHWM): getrusage's ru_maxrss would also count
# the parent's memory, which Linux carries over through fork/vfork and exec, so a test run
# late in a large pytest session would measure pytest.
RSS = ("import re, sys\n"
       "from sealtrail.cli.main import main\n"
       "code = main(sys.argv[1:])\n"
       "with open('/proc/self/status') as f:\n"
       "    hwm = re.search(r'VmHWM:\\s+(\\d+)', f.read()).group(1)\n"
       "print('maxrss_kb', hwm, file=sys.stderr)\n"
       "sys.exit(code)\n")


def sealtrail(tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """`sealtrail ARGS` as a process; stderr ends with the process's peak RSS."""
    return subprocess.run(
        [sys.executable, "-c", RSS, *map(str, args)], capture_output=True, text=True,
        timeout=120, env={**os.environ, "SEALTRAIL_HOME": str(tmp_path / "home")})


def one_line(stderr: str) -> str:
    """The error output without the RSS line: one line, no traceback."""
    lines = [line for line in stderr.splitlines() if not line.startswith("maxrss_kb")]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    return lines[0]


def peak_mb(stderr: str) -> float:
    return int(stderr.rsplit("maxrss_kb ", 1)[1].split()[0]) / 1024


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    return write_keyring(tmp_path / "public.json", keyring_of(signer("exit-codes")))


def test_verify_note_on_a_missing_file_exits_2(tmp_path: Path, keys: Path) -> None:
    """verify-note on a file that does not exist: exit 2 with one line (was a
    FileNotFoundError traceback and exit 1)."""
    key_id = signer("exit-codes").key_id
    proc = sealtrail(tmp_path, "verify-note", tmp_path / "nope.txt", "--keys", keys,
                     "--key-id", key_id)
    assert proc.returncode == 2
    assert "cannot read note" in one_line(proc.stderr) and "nope.txt" in proc.stderr


@pytest.mark.parametrize("note", [b"", b"no blank line", b"x\n\n\xff\xfe\n",
                                  b"body\n\n\xe2\x80\x94 name notbase64!\n"])
def test_verify_note_on_something_that_is_no_note_exits_2(
        tmp_path: Path, keys: Path, note: bytes) -> None:
    """A file that is not a signed note at all is refused as input (2), not as evidence."""
    path = tmp_path / "note.txt"
    path.write_bytes(note)
    proc = sealtrail(tmp_path, "verify-note", path, "--keys", keys, "--key-id",
                     signer("exit-codes").key_id)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    one_line(proc.stderr)


def test_verify_proof_on_deeply_nested_json_exits_2(tmp_path: Path, keys: Path) -> None:
    """A million nested arrays: exit 2, one line (was a RecursionError traceback, exit 1)."""
    path = tmp_path / "proof.json"
    path.write_bytes(b"[" * 1_000_000 + b"]" * 1_000_000)
    proc = sealtrail(tmp_path, "verify-proof", path, "--keys", keys)
    assert proc.returncode == 2
    assert "nested too deeply" in one_line(proc.stderr)


@pytest.mark.parametrize("doc,why", [
    (b"not json", "not JSON"),
    (b"[]", "not a sealtrail-proof/v1"),
    (json.dumps({"format": "sealtrail-proof/v1"}).encode(), "lacks member"),
    (b'{"format": "sealtrail-proof/v1", "x": ' + b"9" * 5000 + b"}", "not JSON"),
])
def test_verify_proof_on_something_that_is_no_proof_exits_2(
        tmp_path: Path, keys: Path, doc: bytes, why: str) -> None:
    path = tmp_path / "proof.json"
    path.write_bytes(doc)
    proc = sealtrail(tmp_path, "verify-proof", path, "--keys", keys)
    assert proc.returncode == 2
    assert why in one_line(proc.stderr)


def _bundle(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize("manifest,why", [
    (b"[]", "not a sealtrail-export/v1 manifest"),
    (json.dumps({"format": "sealtrail-export/v1", "files": [], "count": 0}).encode(),
     "files must be an object"),
    (json.dumps({"format": "sealtrail-export/v1", "files": {}, "count": 0,
                 "time_range_asked": []}).encode(), "time_range_asked must be an object"),
    (b"[" * 100_000, "nested too deeply"),
])
def test_verify_export_on_a_malformed_manifest_exits_2(
        tmp_path: Path, keys: Path, manifest: bytes, why: str) -> None:
    """A bundle whose manifest.json is a list (once an AttributeError traceback,
    exit 1), has members of the wrong type, or is nested too deeply: exit 2."""
    path = tmp_path / "bundle.zip"
    path.write_bytes(_bundle({"manifest.json": manifest}))
    proc = sealtrail(tmp_path, "verify-export", path, "--keys", keys)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert why in one_line(proc.stderr)


def test_verify_export_on_what_is_no_zip_exits_2(tmp_path: Path, keys: Path) -> None:
    path = tmp_path / "bundle.zip"
    path.write_bytes(b"PK\x03\x04 but nothing else")
    proc = sealtrail(tmp_path, "verify-export", path, "--keys", keys)
    assert proc.returncode == 2 and "not a zip archive" in one_line(proc.stderr)


def _bomb(inflated: int) -> bytes:
    """A bundle whose listed events.jsonl inflates ``inflated`` zero bytes from about a
    thousandth of that, with honest headers (the bytes really inflate that far)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1024 * 1024)
    parts = [deflate.compress(chunk) for _ in range(inflated // len(chunk))]
    compressed = b"".join(parts) + deflate.flush()
    info = zipfile.ZipInfo("events.jsonl")
    info.compress_type = zipfile.ZIP_DEFLATED
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("manifest.json", json.dumps({
            "format": "sealtrail-export/v1", "count": 0,
            "files": {"events.jsonl": "00" * 32}}))
        # Write the member by hand: compressed bytes, declared sizes and CRC as they are.
        info.file_size = inflated
        info.compress_size = len(compressed)
        info.CRC = 0
        for _ in range(inflated // len(chunk)):
            info.CRC = zlib.crc32(chunk, info.CRC)
        with z._lock:  # type: ignore[attr-defined]
            z.fp.seek(z.start_dir)  # type: ignore[union-attr]
            info.header_offset = z.fp.tell()  # type: ignore[union-attr]
            z.fp.write(info.FileHeader(False))  # type: ignore[union-attr]
            z.fp.write(compressed)  # type: ignore[union-attr]
            z.start_dir = z.fp.tell()  # type: ignore[union-attr]
            z.filelist.append(info)
            z.NameToInfo[info.filename] = info
    return buf.getvalue()


def test_a_zip_bomb_is_refused_before_it_inflates(tmp_path: Path, keys: Path) -> None:
    """A 1 MB bundle whose member inflates to 1 GiB: exit 2 naming the member and the
    ratio, and the process never holds more than a small fraction of it (it took 2 GB)."""
    data = _bomb(1024**3)
    assert len(data) < 1_200_000
    # A real bomb: it does inflate that far.
    with zipfile.ZipFile(io.BytesIO(data)) as z, z.open("events.jsonl") as member:
        assert len(member.read(50 * 1024 * 1024)) == 50 * 1024 * 1024
    path = tmp_path / "bundle.zip"
    path.write_bytes(data)
    proc = sealtrail(tmp_path, "verify-export", path, "--keys", keys)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "events.jsonl" in one_line(proc.stderr) and "times" in proc.stderr
    assert peak_mb(proc.stderr) < 300


def test_an_internal_error_exits_3_in_one_line_and_debug_shows_the_traceback(
        tmp_path: Path, keys: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A bug (here, verify-proof's core raising an exception nobody planned for) is exit 3
    with one line naming the exception type and place, never its message (which may quote
    data); --debug adds the traceback. Never exit 1."""
    import sealtrail.verify.proof

    def broken(data: bytes, keyring: object) -> None:
        raise ZeroDivisionError("secret-value-in-message")

    monkeypatch.setattr(sealtrail.verify.proof, "verify_proof", broken)
    path = tmp_path / "proof.json"
    path.write_bytes(b"{}")
    assert main(["verify-proof", str(path), "--keys", str(keys)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: ZeroDivisionError at" in err
    assert "test_exit_codes.py" in err and "secret-value-in-message" not in err
    assert main(["--debug", "verify-proof", str(path), "--keys", str(keys)]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "secret-value-in-message" in err


def test_an_io_error_is_2_in_one_line(tmp_path: Path) -> None:
    """verify on an intact archive, told to write its metrics under a regular file: the
    evidence checked out, the write failed: exit 2 with one line, not a traceback."""
    from helpers.archive_builder import build_archive

    built = build_archive(tmp_path, chains=1, segments=1, records=2)
    (tmp_path / "file").write_text("x")
    proc = sealtrail(tmp_path, "verify", built.root, "--keys", built.keyring_path,
                     "--json", "--metrics-file", tmp_path / "file" / "m.prom")
    assert proc.returncode == 2
    assert "I/O error" in one_line(proc.stderr)


@pytest.mark.parametrize("keyring", [b"[" * 100_000, b'{"format": 1' + b"0" * 5000 + b"}",
                                     b'{"format": "sealtrail-keyring/v1", "keys": 5}',
                                     b"\xff\xfe not text"])
def test_verify_with_a_keyring_that_is_no_keyring_exits_2(tmp_path: Path,
                                                           keyring: bytes) -> None:
    from helpers.archive_builder import build_archive

    built = build_archive(tmp_path, chains=1, segments=1, records=2)
    path = tmp_path / "bad-keyring.json"
    path.write_bytes(keyring)
    proc = sealtrail(tmp_path, "verify", built.root, "--keys", path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    one_line(proc.stderr)


@pytest.mark.parametrize("checkpoint", [b"[" * 100_000, b"{" + b" " * 100_000 + b"}",
                                        b'{"format": "sealtrail-checkpoint/v1", "checkpoint": '
                                        b'[], "checkpoint_hash": 1, "signature": null}'])
def test_an_archive_with_a_hostile_checkpoint_fails_as_evidence(
        tmp_path: Path, checkpoint: bytes) -> None:
    """A checkpoint file nested a hundred thousand levels deep, too large, or of the wrong
    types: the archive is not intact (exit 1, finding malformed), and nothing crashes;
    --completeness says where its coverage stops."""
    from helpers.archive_builder import build_archive, write_object

    built = build_archive(tmp_path, chains=1, segments=2, records=2)
    write_object(built.root / "chains" / built.chain_ids[0] / "checkpoints" / "0000000001.json",
                 checkpoint)
    proc = sealtrail(tmp_path, "verify", built.root, "--keys", built.keyring_path,
                     "--completeness")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "malformed" in proc.stdout and "STOPPED" in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", [
    ["report", "--out", "{tmp}/r.html", "--keys", "{keys}"],
    ["prove", "e-1", "--out", "{tmp}/p.json", "--keys", "{keys}"],
    ["index", "rebuild", "--index", "{tmp}/i.sqlite", "--keys", "{keys}"],
    ["export", "actor:u1", "--out", "{tmp}/b.zip", "--index", "{tmp}/i.sqlite", "--keys",
     "{keys}"],
    ["retention", "report"], ["retention", "purge"], ["hold", "list"],
    ["hold", "apply", "--case", "c-1", "--from", "2026-01-01", "--to", "2026-02-01"],
], ids=lambda c: " ".join(c[:2]))
def test_an_archive_that_is_not_there_exits_2_not_1(tmp_path: Path, keys: Path,
                                                    command: list[str]) -> None:
    """Every reader of the archive refuses a local archive that does not exist as a usage
    error (2, naming it): it is not an empty archive whose evidence failed (1), nor one
    that checked out (0: `index rebuild` built an empty index from it, `report` wrote an
    empty page, `retention report` counted no objects, `hold list` found no holds)."""
    missing = tmp_path / "no-archive-here"
    args = [a.replace("{tmp}", str(tmp_path)).replace("{keys}", str(keys)) for a in command]
    proc = sealtrail(tmp_path, *args, "--archive", missing)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"no archive at {missing} (--archive)" in one_line(proc.stderr)
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "i.sqlite").exists()
    assert not missing.exists()
