"""sealtrail: a tamper-evident audit pipeline for Python services.

Emit with :class:`sealtrail.producers.AuditClient`; the sealer
(``sealtrail seal``) signs and hash-chains events; the archiver
(``sealtrail archive``) stores them; ``sealtrail verify`` proves the archive.
"""

__version__ = "0.1.0"
