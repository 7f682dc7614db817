"""Key files beyond the active ones (see :mod:`sealtrail.keys`): what happens to a signing
key once it is retired. A retired private key that still exists can sign entries and
checkpoints dated inside its old window, which verify accepts on signatures alone; so by
default ``keys rotate`` destroys it (:func:`destroy_file`), and keeping it takes an
explicit choice and a passphrase it is encrypted under (:func:`keep_encrypted`)."""

from sealtrail.keyfiles.retire import (
    MIN_PASSPHRASE,
    destroy_file,
    keep_encrypted,
    load_encrypted,
    plaintext_retired_signing_keys,
)

__all__ = ["MIN_PASSPHRASE", "destroy_file", "keep_encrypted", "load_encrypted",
           "plaintext_retired_signing_keys"]
