"""The database's digest key: argument digests without a secret leak arguments.

Under an `EncryptedSerializer`, call keys (and effect ids, derived from them)
are made with an HMAC-SHA256 under one random 32-byte key per database
(`core.identity.args_digest`), so the clear `call_key` column says nothing
about the arguments. `setup()` creates the key (insert-or-ignore, so
concurrent set-ups agree on one) and stores it encrypted with the saver's
cipher in `lgrb_keys`; every process that opens the database reads the same
key. `since_seq` is the ledger's last `seq` when the key was made: effects
up to it were keyed by a plain SHA-256, so replays of threads then in flight
also look up their unkeyed keys.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from langgraph_rollback._errors import InvalidConfigError
from langgraph_rollback.core.ledger_codec import LedgerCodec

__all__ = ["DIGEST", "SELECT_KEY", "insert_key_sql", "new_key", "read_key"]

DIGEST = "digest"
SELECT_KEY = f"SELECT cipher, value, since_seq FROM lgrb_keys WHERE name = '{DIGEST}'"


def insert_key_sql(mark: str, *, postgres: bool) -> str:
    """Insert the digest key unless one is there."""
    values = (
        f"SELECT '{DIGEST}', {mark}, {mark}, coalesce(max(seq), 0) FROM lgrb_effects"
    )
    columns = "lgrb_keys (name, cipher, value, since_seq)"
    if postgres:
        return f"INSERT INTO {columns} {values} ON CONFLICT (name) DO NOTHING"
    return f"INSERT OR IGNORE INTO {columns} {values}"


def new_key(codec: LedgerCodec) -> tuple[str, bytes] | None:
    """A fresh key, encrypted: `(cipher name, ciphertext)`; None without a cipher."""
    if codec.cipher is None:
        return None
    return codec.cipher.encrypt(os.urandom(32))


def read_key(codec: LedgerCodec, row: Sequence[Any] | None) -> tuple[bytes, bool]:
    """The key in a `SELECT_KEY` row, and whether older effects are unkeyed.

    Raises:
        InvalidConfigError: The row is missing, or the cipher cannot open it.
    """
    if row is None or codec.cipher is None:
        raise InvalidConfigError(
            "The ledger's digest key is missing. Fix: call setup() on the saver."
        )
    cipher, value, since_seq = row
    try:
        key = codec.cipher.decrypt(cipher, bytes(value))
    except Exception as exc:
        raise InvalidConfigError(
            "The ledger's digest key cannot be decrypted with this saver's "
            f"cipher ({type(exc).__name__}). Fix: open the database with the "
            "EncryptedSerializer key it was written with."
        ) from None
    return key, int(since_seq) > 0
