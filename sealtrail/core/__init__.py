"""The functional core: values in, values out. No network, disk, environment or clock.

- :mod:`.hashing`: hash domains and digests
- :mod:`.canonical`: the exact bytes that are hashed and signed
- :mod:`.signing`: Ed25519 signers and the pinned public keyring
- :mod:`.chain`: sealing entries into a hash chain and checking links
- :mod:`.merkle`: RFC 6962 Merkle trees and inclusion proofs
- :mod:`.checkpoint`: signed checkpoints over chain intervals
- :mod:`.redaction`: redaction policies
- :mod:`.envelope`: the AuditEvent envelope rules beyond its Avro schema
"""
