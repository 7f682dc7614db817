"""Enum-like settings are checked when settings are loaded, and the one operator name."""

from __future__ import annotations

import getpass

import pytest

from sealtrail.config import CHOICES, Settings, load_settings
from sealtrail.custody import operator_name
from sealtrail.errors import ConfigError


@pytest.mark.parametrize("name", sorted(CHOICES))
def test_an_unknown_value_names_the_setting_and_the_allowed_values(name: str) -> None:
    """From the environment (or a file): the error names the setting, the value given and
    every allowed value."""
    with pytest.raises(ConfigError) as info:
        load_settings(env={f"SEALTRAIL_{name.upper()}": "bogus"})
    message = str(info.value)
    assert name in message and "'bogus'" in message
    assert all(value in message for value in CHOICES[name])


@pytest.mark.parametrize("name", sorted(CHOICES))
def test_every_allowed_value_loads(name: str) -> None:
    for value in CHOICES[name]:
        assert getattr(load_settings(env={f"SEALTRAIL_{name.upper()}": value}), name) == value


def test_enum_settings_in_a_file_are_checked_too(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "sealtrail.toml"  # type: ignore[operator]
    path.write_text('producer_fsync = "sometimes"\n')
    with pytest.raises(ConfigError, match="producer_fsync: 'sometimes' is not one of always"):
        load_settings(path, env={})


def test_operator_comes_from_the_option_then_the_setting_then_the_login() -> None:
    """One operator name for every tool: --operator, else SEALTRAIL_OPERATOR (through
    Settings), else the login name."""
    configured = load_settings(env={"SEALTRAIL_OPERATOR": "auditor-7"})
    assert configured.operator == "auditor-7"
    assert operator_name(configured) == "auditor-7"
    assert operator_name(configured, "case-officer") == "case-officer"
    assert operator_name(Settings()) == getpass.getuser()


def test_the_s3_endpoint_is_a_setting() -> None:
    """SEALTRAIL_S3_ENDPOINT_URL is read through Settings, like every SEALTRAIL_* variable."""
    assert load_settings(env={"SEALTRAIL_S3_ENDPOINT_URL": "http://127.0.0.1:9"}
                         ).s3_endpoint_url == "http://127.0.0.1:9"


def test_environment_reads_go_through_settings() -> None:
    """No module reads the environment but load_settings, save the few named here (each
    with its reason), so a new SEALTRAIL_* variable cannot bypass Settings."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    allowed = {
        "sealtrail/config.py",  # load_settings itself
        "sealtrail/kafka/_fetch.py",  # SEALTRAIL_KAFKA_CACHE / XDG_CACHE_HOME: a tool cache
        "sealtrail/archive/__init__.py",  # AWS_REGION, the AWS convention
        "sealtrail/cli/run_stack.py",  # registry --auth-env VAR: the variable the user names
        "sealtrail/demo/run.py",  # copies the environment to the processes it starts
    }
    reads = re.compile(r"os\.environ|os\.getenv|getenv\(")
    offenders = [str(path.relative_to(root)) for folder in
                 ("sealtrail", "producers", "pipeline", "consumers", "schemas")
                 for path in (root / folder).rglob("*.py")
                 if reads.search(path.read_text())
                 and str(path.relative_to(root)) not in allowed]
    assert offenders == []
