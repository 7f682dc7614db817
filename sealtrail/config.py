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

from sealtrail.core.avro_bounds import DecodeLimits
from sealtrail.errors import ConfigError

__all__ = ["CHOICES", "Settings", "load_settings"]

#: The enum-like settings and the values each accepts: checked when settings are loaded,
#: with an error naming the setting, the value and the allowed values.
CHOICES: dict[str, tuple[str, ...]] = {
    "retention_mode": ("COMPLIANCE", "GOVERNANCE"),
    "producer_spool_full": ("fail", "block"),
    "producer_fsync": ("always", "interval", "never"),
    "kafka_security_protocol": ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"),
    "kafka_sasl_mechanism": ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"),
    "kafka_group_protocol": ("classic", "consumer"),
}


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
    """Registry credentials: user:password (basic auth) or "Bearer <token>"; never logged."""
    raw_topic: str = "audit.raw"
    """Topic services emit AuditEvents to (Avro, Confluent wire format)."""
    sealed_topic: str = "audit.sealed"
    """Topic the sealer writes sealed records to; raw partition p is sealed into p."""
    dlq_topic: str = "audit.dlq"
    """Rejected raw records, encrypted under dlq.key (they never went through the redaction
    policy); reason and coordinates in headers. Read with `sealtrail dlq read`; grant the
    topic to no one but the sealer (write) and the operators who triage (docs/operations.md)."""
    dlq_retention_hours: float = 72.0
    """Retention (retention.ms) of the DLQ topic when sealtrail creates it: short, since it
    holds raw personal data (encrypted); long enough to triage a rejection."""
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
    """Consumer group of the sealer processes."""
    archiver_group: str = "sealtrail-archiver"
    """Consumer group of the archiver processes."""
    max_event_bytes: int = 256 * 1024
    """Raw records larger than this are rejected (OVERSIZE) without being decoded."""
    decode_max_depth: int = 32
    """Avro nesting (records, arrays, maps, unions) a writer schema and a raw record may have."""
    decode_max_items: int = 100_000
    """Array items and map entries one raw record may decode to, under a writer schema whose
    arrays can hold zero-size items or that is recursive (others are bounded by the bytes)."""
    dedupe_window: int = 10_000
    """Per chain, the number of most recent event_ids the sealer remembers for dedupe."""
    segment_max_records: int = 5_000
    """The archiver closes a chain's segment at this many records..."""
    segment_max_seconds: float = 5.0
    """...or this many seconds after its first buffered record, whichever comes first."""
    retention_days: int = 365
    """Object Lock retention of archived objects when no retention class applies."""
    retention_mode: str = "COMPLIANCE"
    """Object Lock mode: COMPLIANCE (no one can shorten it) or GOVERNANCE."""
    session_timeout_ms: int = 6_000
    """Kafka consumer session timeout; a dead member's partitions move after it."""
    producer_spool_dir: str = ""
    """Base directory of the producer's durable spool; empty means <home>/spool."""
    producer_spool_max_bytes: int = 256 * 1024 * 1024
    """Upper bound of one producer's spool on disk; beyond it producer_spool_full applies."""
    producer_spool_full: str = "fail"
    """Full spool: "fail" (emit raises SpoolFullError) or "block" (wait, then raise)."""
    producer_spool_block_seconds: float = 1.0
    """With producer_spool_full="block", how long emit() waits for room before raising."""
    producer_fsync: str = "interval"
    """Producer spool fsync policy: "always", "interval" or "never" (docs/producer.md)."""
    producer_fsync_interval: float = 0.2
    """Seconds between spool fsyncs with producer_fsync="interval"."""
    metrics_port: int = 0
    """Port of the /metrics, /healthz, /readyz HTTP server of seal, archive, monitor; 0 = off."""
    metrics_host: str = "127.0.0.1"
    """Address the metrics and health server binds to (0.0.0.0 in containers)."""
    alerts_topic: str = "audit.alerts"
    """Topic the monitor writes alert records (JSON) to."""
    monitor_group: str = "sealtrail-monitor"
    """Consumer group (faust app id) of the monitor."""
    monitor_window_seconds: float = 60.0
    """Length of the monitor's tumbling windows (by the sealer's ingestion time)."""
    monitor_lateness_seconds: float = 5.0
    """How long after a window ends the monitor waits for late records before judging it."""
    monitor_baseline_windows: int = 5
    """Trailing windows averaged as a service's volume baseline; also the warm-up length."""
    monitor_volume_drop_fraction: float = 0.5
    """Alert when a service's window volume falls below this fraction of its baseline."""
    monitor_rejection_rate: float = 0.05
    """Alert when rejections / sealed records in a window exceed this fraction."""
    monitor_min_window_events: int = 20
    """Windows with fewer records than this are not judged for the rejection rate."""
    monitor_skew_max_seconds: float = 300.0
    """Alert when |ingested_at - occurred_at| of a service's event exceeds this bound."""
    monitor_checkpoint_max_age_seconds: float = 900.0
    """Alert when a chain's newest archived checkpoint is older than this."""
    monitor_lag_max: int = 10_000
    """Alert when the sealer's or archiver's consumer lag (records) exceeds this."""
    monitor_probe_seconds: float = 30.0
    """How often the monitor reads consumer lag and the archive's checkpoints."""
    retention_classes: str = "pci_dss=365d,hipaa=6y,sox=7y"
    """Retention classes as name=duration (Nd days, Ny calendar years), comma-separated."""
    retention_map: str = "classification:PHI=hipaa,classification:PCI=pci_dss"
    """Event-type globs and classification:NAME entries to classes, e.g.
    "payment.*=pci_dss,phi.*=hipaa,classification:PHI=hipaa"; the longest matching class wins."""
    retention_default_class: str = "default"
    """Class of unmapped events and rejections; if not in retention_classes, retention_days."""
    heartbeat_seconds: float = 300.0
    """The archiver writes an empty signed checkpoint per idle chain at this interval; 0 = off."""
    index_url: str = ""
    """Search index: a SQLite file path or postgresql://...; empty means <home>/index.sqlite."""
    indexer_group: str = "sealtrail-indexer"
    """Consumer group of the indexer (sealed topic -> search index)."""
    kafka_security_protocol: str = "PLAINTEXT"
    """Kafka security.protocol: PLAINTEXT, SASL_PLAINTEXT or SASL_SSL (docs/operations.md)."""
    kafka_sasl_mechanism: str = "SCRAM-SHA-256"
    """SASL mechanism with a SASL_* protocol: SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN."""
    kafka_sasl_username: str = ""
    """SASL user this process authenticates as (one principal per stage, docs/operations.md)."""
    kafka_sasl_password: str = ""
    """That user's SASL password; never logged, masked by `config show`."""
    kafka_group_protocol: str = "classic"
    """Consumer groups: "classic" (cooperative-sticky; every broker) or "consumer" (KIP-848)."""
    kafka_group_instance_id: str = ""
    """Static membership: a stable id per process (e.g. the pod name); a restart keeps its
    partitions without a rebalance. Unique per process within a group; empty = dynamic."""
    operator: str = ""
    """Who runs the tools, as recorded in chain-of-custody events, hold manifests, export
    manifests, reports and erasure receipts (--operator overrides it for one run); empty
    means the login name."""
    retired_key_passphrase: str = ""
    """Passphrase that `keys rotate --keep-retired` encrypts the retired signing key under
    (at least 12 characters; --passphrase-file takes precedence). Set it in the environment
    (SEALTRAIL_RETIRED_KEY_PASSPHRASE), not in a file; never logged, masked by `config show`."""
    custody_required: bool = False
    """Tools that hand out audit data (search, export, replay, report, dlq read) first record
    their chain-of-custody event and refuse (exit 2, nothing written) when it cannot be
    recorded. Off: they warn and go on."""

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"setting {name}: {value!r} is not one of "
                                  f"{', '.join(allowed)}"
                                  + (" (consumer is KIP-848, Apache Kafka 4.0 or newer)"
                                     if name == "kafka_group_protocol" else ""))
        for name in ("partitions", "max_event_bytes", "segment_max_records", "retention_days",
                     "decode_max_depth", "decode_max_items"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        if not 0 < self.dlq_retention_hours <= 24 * 365:
            raise ConfigError("dlq_retention_hours must be > 0 and at most a year")
        if self.decode_max_depth > 256:
            raise ConfigError("decode_max_depth must be at most 256")

    @property
    def decode_limits(self) -> DecodeLimits:
        """The bounds raw records are decoded under (sealtrail.core.avro_bounds)."""
        return DecodeLimits(self.decode_max_depth, self.decode_max_items)

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
        filled = dataclasses.replace(
            self,
            bootstrap=self.bootstrap or state.get("bootstrap", ""),
            registry_url=self.registry_url or state.get("registry", ""),
        )
        return filled._with_stack_user(state)

    def _with_stack_user(self, state: dict[str, Any]) -> Settings:
        """On a secured dev stack (`dev up --secure`), authenticate as its ``tools`` user
        unless a user is configured: the least-privileged principal an operator's commands
        need. Stages get their own users (docs/operations.md)."""
        users_file = state.get("users_file")
        if not users_file or self.kafka_sasl_username:
            return self
        try:
            users = json.loads(Path(users_file).read_text())
        except (OSError, ValueError):
            return self
        return dataclasses.replace(
            self, kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-256",
            kafka_sasl_username="tools", kafka_sasl_password=users.get("tools", ""))

    def require_endpoints(self) -> Settings:
        """Settings with bootstrap and registry set, or a ConfigError saying how to set them."""
        s = self.with_stack()
        if not s.bootstrap or not s.registry_url:
            raise ConfigError(
                "no broker or registry configured: start the embedded stack with "
                "`sealtrail dev up`, or set SEALTRAIL_BOOTSTRAP and SEALTRAIL_REGISTRY_URL"
            )
        return s


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _coerce(name: str, kind: Any, raw: Any) -> Any:
    try:
        if kind in (bool, "bool"):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE or text in _FALSE:
                return text in _TRUE
            raise ValueError(raw)
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
