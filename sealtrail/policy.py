"""Loading the redaction policy file (YAML) into a core Policy, with the shell's parts
plugged in: the HMAC key, the subject key store, and the redaction metrics."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from sealtrail import schemas
from sealtrail.config import Settings
from sealtrail.core.redaction import (
    FieldEncryptor,
    HmacPseudonymizer,
    Policy,
    Pseudonymizer,
    count_actions,
)
from sealtrail.errors import ConfigError, PolicyError

__all__ = ["RedactionMetrics", "default_policy_text", "load_policy",
           "policy_for_sealer", "read_policy_document"]

OTHER_EVENT_TYPES = "_other"


class RedactionMetrics(Collector):
    """The policy observer counting ``sealtrail_redactions_total{event_type, action}``;
    also a Prometheus collector, registered on the stage's metrics registry.

    Event types are producer-chosen strings; past ``max_event_types`` distinct ones
    the rest are counted under ``_other`` so a misbehaving producer cannot blow up the
    metric's cardinality. Counting is a dict update on the sealing thread; a scrape
    reads a snapshot."""

    def __init__(self, *, max_event_types: int = 200) -> None:
        self._max = max_event_types
        self._types: set[str] = set()
        self.counts: dict[tuple[str, str], int] = {}

    def __call__(self, event_type: str, fields: Sequence[str]) -> None:
        if event_type not in self._types:
            if len(self._types) >= self._max:
                event_type = OTHER_EVENT_TYPES
            else:
                self._types.add(event_type)
        counts = self.counts
        for action, n in count_actions(fields).items():
            key = (event_type, action)
            counts[key] = counts.get(key, 0) + n

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "sealtrail_redactions",
            "Fields the redaction policy transformed, by event type and action.",
            labels=["event_type", "action"])
        for (event_type, action), n in sorted(dict(self.counts).items()):
            family.add_metric([event_type, action], n)
        yield family


def default_policy_text() -> str:
    return resources.files("sealtrail").joinpath("data", "default-policy.yaml").read_text()


def read_policy_document(path: str | None) -> Any:
    """The parsed policy document at ``path`` (the shipped default when empty)."""
    where = path or "(default policy)"
    if path:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read policy file {path}: {exc.strerror}") from None
    else:
        text = default_policy_text()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy file {where} is not valid YAML: {exc}") from None


def _uses(doc: Any, action: str) -> bool:
    rules = doc.get("rules") if isinstance(doc, dict) else None
    return isinstance(rules, list) and any(
        isinstance(r, dict) and r.get("action") == action for r in rules)


class _CheckOnly:
    """Stands in for keys when a policy is only validated (``sealtrail policy check``)."""

    def pseudonym(self, value: str) -> str:
        raise PolicyError("a policy loaded for checking cannot redact")

    def encrypt(self, subject: str, value: str, *, path: str) -> str:
        raise PolicyError("a policy loaded for checking cannot redact")


def load_policy(
    path: str | None,
    hmac_key: bytes | None,
    hmac_key_id: str = "k1",
    *,
    pseudonymizer: Pseudonymizer | None = None,
    encryptor: FieldEncryptor | None = None,
    metrics: RedactionMetrics | None = None,
    check_only: bool = False,
) -> Policy:
    """The policy at ``path`` (the shipped default when empty), validated.

    ``check_only`` validates without keys: the result cannot redact."""
    doc = read_policy_document(path)
    if check_only:
        stand_in = _CheckOnly()
        pseudonymizer, encryptor = stand_in, stand_in
    elif pseudonymizer is None and hmac_key:
        pseudonymizer = HmacPseudonymizer(hmac_key, hmac_key_id)
    try:
        return Policy.from_document(
            doc, event_schema=schemas.load(schemas.AUDIT_EVENT),
            pseudonymizer=pseudonymizer, encryptor=encryptor,
            observer=metrics,
        )
    except PolicyError as exc:
        raise PolicyError(f"{path or '(default policy)'}: {exc}") from None


def policy_for_sealer(settings: Settings, metrics: RedactionMetrics | None = None
                      ) -> Policy:
    """The configured policy with the sealer's keys: the HMAC key (reloaded after
    ``keys rotate-hmac``), the subject key store when a rule encrypts, and metrics."""
    from sealtrail.keys import ReloadingPseudonymizer

    doc = read_policy_document(settings.policy_file or None)
    encryptor: FieldEncryptor | None = None
    if _uses(doc, "encrypt"):
        from sealtrail.keys.subject import LocalKeyStore, SubjectEncryptor

        encryptor = SubjectEncryptor(LocalKeyStore(settings.keys))
    return load_policy(settings.policy_file or None, None,
                       pseudonymizer=ReloadingPseudonymizer(settings.keys),
                       encryptor=encryptor, metrics=metrics)
