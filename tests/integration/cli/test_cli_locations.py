"""Every command takes the archive, index and keys from the settings, says which it used,
and names it (and where it came from) in its errors; stages record theirs for `status`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers.archive_builder import build_archive

from sealtrail.cli.run_status import _archive_to_show, _with_locations, render
from sealtrail.config import Settings
from sealtrail.runtime import dev

COMMAND = [sys.executable, "-m", "sealtrail.cli.main"]


def run(cwd: Path, *args: str | Path, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    """`sealtrail ARGS` in ``cwd`` with no SEALTRAIL_* variable inherited but ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEALTRAIL_")}
    proc = subprocess.run([*COMMAND, *map(str, args)], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_export_on_a_wrong_archive_names_the_path_it_read(tmp_path: Path) -> None:
    """An index built from one archive, an export pointed at an empty one: exit 2, and the
    error names the archive read and where that came from (not only "no usable
    checkpoint"); with no --archive, the default location and how to change it."""
    built = build_archive(tmp_path, chains=1, segments=2, records=3)
    idx = tmp_path / "idx.sqlite"
    assert run(tmp_path, "index", "rebuild", "--index", idx, "--archive", built.root,
               "--keys", built.keyring_path).returncode == 0
    empty = tmp_path / "empty-archive"
    empty.mkdir()
    proc = run(tmp_path, "export", "", "--out", tmp_path / "b.zip", "--index", idx,
               "--archive", empty, "--keys", built.keyring_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert str(empty) in proc.stderr and "(--archive)" in proc.stderr
    proc = run(tmp_path, "export", "", "--out", tmp_path / "b.zip", "--index", idx,
               "--keys", built.keyring_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    default = ".sealtrail/archive"
    assert default in proc.stderr and "set archive_url in sealtrail.toml" in proc.stderr
    assert not (tmp_path / "b.zip").exists()


def test_the_archive_setting_is_used_and_said(tmp_path: Path) -> None:
    """archive_url in ./sealtrail.toml: verify (no ARCHIVE) and export read it and say so;
    the same archive given nowhere is not silently replaced by <home>/archive."""
    built = build_archive(tmp_path, chains=1, segments=2, records=3)
    (tmp_path / "sealtrail.toml").write_text(f'archive_url = "{built.root}"\n'
                                             f'index_url = "{tmp_path / "idx.sqlite"}"\n')
    proc = run(tmp_path, "verify", "--keys", built.keyring_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"verifying archive {built.root} (setting archive_url)" in proc.stdout
    assert run(tmp_path, "index", "rebuild", "--keys", built.keyring_path).returncode == 0
    proc = run(tmp_path, "export", "", "--out", tmp_path / "b.zip", "--keys",
               built.keyring_path)
    assert proc.returncode == 0, proc.stderr
    assert f"archive {built.root} (setting archive_url)" in proc.stderr
    assert f"index {tmp_path / 'idx.sqlite'} (setting index_url)" in proc.stderr


def test_verify_of_a_missing_archive_says_where_the_path_came_from(tmp_path: Path) -> None:
    proc = run(tmp_path, "verify", "--keys", tmp_path / "k.json",
               env={"SEALTRAIL_ARCHIVE_URL": str(tmp_path / "nowhere")})
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"sealtrail: no archive at {tmp_path / 'nowhere'} "
                                   "(setting archive_url)")


def test_seal_without_keys_hints_keys_init(tmp_path: Path) -> None:
    """The sealer started before `keys init`: exit 2, naming the keys directory and the
    command that creates the keys (no broker is contacted before the keys are read)."""
    proc = run(tmp_path, "seal", env={"SEALTRAIL_BOOTSTRAP": "127.0.0.1:1",
                                      "SEALTRAIL_REGISTRY_URL": "http://127.0.0.1:1"})
    assert proc.returncode == 2
    assert "sealtrail keys init" in proc.stderr and ".sealtrail/keys" in proc.stderr


def test_an_unknown_enum_value_stops_any_command(tmp_path: Path) -> None:
    proc = run(tmp_path, "config", "show", env={"SEALTRAIL_RETENTION_MODE": "SOFT"})
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("sealtrail: setting retention_mode: 'SOFT' is not one of "
                                   "COMPLIANCE, GOVERNANCE")


def test_stages_record_their_locations_and_status_shows_them(tmp_path: Path) -> None:
    """A stage process records the locations it was started with; status lists them with
    the process and reads the chains of the archive the running archiver writes to."""
    home = tmp_path / "home"
    script = ("import sys, time\nfrom pathlib import Path\nfrom sealtrail.runtime import dev\n"
              "dev.record_stage(Path(sys.argv[1]), 'archive', {'archive': sys.argv[2], "
              "'keys': sys.argv[3]})\nprint('ok', flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(home), "s3://b/elsewhere",
                             str(tmp_path / "k")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ok"
        dev.record_stage(home, "seal", {"keys": str(tmp_path / "k")})  # this process
        stages = dev.recorded_stages(home)
        assert {(s["stage"], s["pid"]) for s in stages} == {("archive", proc.pid),
                                                            ("seal", os.getpid())}
        settings = Settings(home=home)
        found = _with_locations([{"pid": proc.pid, "stage": "archive"}], settings)
        archiver = next(p for p in found if p["stage"] == "archive")
        assert archiver["archive"] == "s3://b/elsewhere"
        url, origin = _archive_to_show(None, settings, found)
        assert (url, origin) == ("s3://b/elsewhere", f"the running archiver's, pid {proc.pid}")
        assert _archive_to_show("/x", settings, found) == ("/x", "--archive")
        text = render({"embedded_stack": None, "bootstrap": "", "processes": found, "lag": [],
                       "archive": {"url": url, "origin": origin, "error": None},
                       "chains": [], "alerts_firing": []})
        assert f"archive (pid {proc.pid}, archive s3://b/elsewhere, keys {tmp_path / 'k'})" \
            in text
        assert f"chains in s3://b/elsewhere (the running archiver's, pid {proc.pid})" in text
    finally:
        proc.kill()
        proc.wait()
    assert [s["stage"] for s in dev.recorded_stages(home)] == ["seal"]  # the gone are dropped
