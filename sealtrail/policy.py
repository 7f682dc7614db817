"""Loading the redaction policy file (YAML) into a core Policy."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from sealtrail import schemas
from sealtrail.core.redaction import Policy
from sealtrail.errors import ConfigError, PolicyError

__all__ = ["default_policy_text", "load_policy"]


def default_policy_text() -> str:
    return resources.files("sealtrail").joinpath("data", "default-policy.yaml").read_text()


def load_policy(path: str | None, hmac_key: bytes | None, hmac_key_id: str = "k1") -> Policy:
    """The policy at ``path`` (the shipped default when empty), validated."""
    if path:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read policy file {path}: {exc.strerror}") from None
    else:
        text = default_policy_text()
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy file {path or '(default)'} is not valid YAML: {exc}") from None
    return Policy.from_document(
        doc, event_schema=schemas.load(schemas.AUDIT_EVENT), hmac_key=hmac_key,
        hmac_key_id=hmac_key_id,
    )
