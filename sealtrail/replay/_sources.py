"""What replay reads from: the archive (:class:`sealtrail.reading.ArchiveSource`) or the
sealed topic (:class:`KafkaSource`, read and checked in ``_kafka``)."""

from __future__ import annotations

from typing import Any

from sealtrail.core.findings import Finding
from sealtrail.core.signing import Keyring

# Where the evidence stops checking out; nothing after it in that chain is replayed.
# The same record verify reports, so both tools name breaks the same way.
Break = Finding


class KafkaSource:
    """Sealed records from the sealed topic, from the offsets ``offsets_for_times`` gives."""

    def __init__(self, settings: Any, keyring: Keyring, *, check_signatures: bool = True) -> None:
        self.settings = settings
        self.keyring = keyring if check_signatures else None
        self.description = f"kafka {settings.bootstrap} topic {settings.sealed_topic}"
