"""Configuration: one typed, frozen place. Embedded defaults need no file.

Precedence, highest first: environment variables ``SEALTRAIL_<FIELD>`` (upper
case), a TOML file (``--config``, ``SEALTRAIL_CONFIG``, or ``./sealtrail.toml``),
the running embedded stack (``sealtrail dev up`` writes where it listens), and
the defaults below. docs/configuration.md lists every field.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sealtrail.errors import ConfigError

__all__ = ["Settings", "load_settings"]


@dataclass(frozen=True)
class Settings:
    """Every setting sealtrail reads, with its default."""

    home: Path = Path(".sealtrail")
    """Working directory of the embedded default: archive, keys, registry, dev stack."""
    bootstrap: str = ""
    """Kafka bootstrap servers; empty means the embedded stack's broker."""
    registry_url: str = ""
    """Schema Registry URL; empty means the embedded stack's registry."""
    registry_auth: str = ""
    """Registry credentials as user:password (basic auth); never logged."""
    raw_topic: str = "audit.raw"
    sealed_topic: str = "audit.sealed"
    dlq_topic: str = "audit.dlq"
    partitions: int = 3
    """Partitions of the raw and sealed topics when sealtrail creates them."""
    archive_url: str = ""
    """Archive root: a directory, file:// or s3://bucket/prefix; empty means <home>/archive."""
    s3_endpoint_url: str = ""
    """S3 endpoint override (MinIO, moto); empty means AWS."""
    keys_dir: str = ""
    """Directory with the signing key, the HMAC key and public.json; empty means <home>/keys."""
    policy_file: str = ""
    """Redaction policy YAML; empty means the default policy shipped with sealtrail."""
    sealer_group: str = "sealtrail-sealer"
    archiver_group: str = "sealtrail-archiver"
    max_event_bytes: int = 256 * 1024
    """Raw records larger than this are rejected (OVERSIZE) without being decoded."""
    dedupe_window: int = 10_000
    """Per chain, the number of most recent event_ids the sealer remembers for dedupe."""
    segment_max_records: int = 5_000
    segment_max_seconds: float = 5.0
    retention_days: int = 365
    retention_mode: str = "COMPLIANCE"
    session_timeout_ms: int = 6_000

    def __post_init__(self) -> None:
        if self.retention_mode not in ("COMPLIANCE", "GOVERNANCE"):
            raise ConfigError("retention_mode must be COMPLIANCE or GOVERNANCE")
        for name in ("partitions", "max_event_bytes", "segment_max_records", "retention_days"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")

    @property
    def archive(self) -> str:
        return self.archive_url or str(self.home / "archive")

    @property
    def keys(self) -> Path:
        return Path(self.keys_dir) if self.keys_dir else self.home / "keys"

    @property
    def dev_state_file(self) -> Path:
        return self.home / "dev" / "stack.json"

    def to_env(self) -> dict[str, str]:
        """These settings as SEALTRAIL_* environment variables, for a child process."""
        return {f"SEALTRAIL_{f.name.upper()}": str(getattr(self, f.name)) for f in fields(self)}

    def with_stack(self) -> Settings:
        """Fill an empty bootstrap/registry from the running embedded stack, if any."""
        if self.bootstrap and self.registry_url:
            return self
        try:
            state = json.loads(self.dev_state_file.read_text())
        except (OSError, ValueError):
            return self
        return dataclasses.replace(
            self,
            bootstrap=self.bootstrap or state.get("bootstrap", ""),
            registry_url=self.registry_url or state.get("registry", ""),
        )

    def require_endpoints(self) -> Settings:
        """Settings with bootstrap and registry set, or a ConfigError saying how to set them."""
        s = self.with_stack()
        if not s.bootstrap or not s.registry_url:
            raise ConfigError(
                "no broker or registry configured: start the embedded stack with "
                "`sealtrail dev up`, or set SEALTRAIL_BOOTSTRAP and SEALTRAIL_REGISTRY_URL"
            )
        return s


def _coerce(name: str, kind: Any, raw: Any) -> Any:
    try:
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
        if kind in (Path, "Path"):
            return Path(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name}: cannot read {raw!r} as {kind}") from None


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Settings from defaults, a TOML file, the environment and explicit overrides."""
    env = dict(os.environ) if env is None else env
    values: dict[str, Any] = {}
    known = {f.name: f.type for f in fields(Settings)}
    path = config_file or env.get("SEALTRAIL_CONFIG")
    if path is None and Path("sealtrail.toml").exists():
        path = "sealtrail.toml"
    if path:
        try:
            doc = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        doc = doc.get("sealtrail", doc)
        for key, raw in doc.items():
            if key not in known:
                raise ConfigError(f"config file {path}: unknown setting {key!r}")
            values[key] = _coerce(key, known[key], raw)
    for key, kind in known.items():
        raw = env.get(f"SEALTRAIL_{key.upper()}")
        if raw is not None:
            values[key] = _coerce(key, kind, raw)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)
