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

A ledger that had the table (`KEYS_VERSION`) and holds encrypted effects but
no key row lost its key: those effects' call keys were made under it, so a
new key would make their replays miss them and call the tools again.
`setup()` refuses (`check_key_kept`) rather than minting one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from langgraph_rollback._errors import InvalidConfigError
from langgraph_rollback.core.ledger_codec import LedgerCodec

__all__ = [
    "DIGEST",
    "KEYS_VERSION",
    "LOST_KEY",
    "SELECT_KEY",
    "check_key_kept",
    "insert_key_sql",
    "keyed_before",
    "new_key",
    "read_key",
]

DIGEST = "digest"
SELECT_KEY = f"SELECT cipher, value, since_seq FROM lgrb_keys WHERE name = '{DIGEST}'"

KEYS_VERSION = 3
"""The ledger migration that creates `lgrb_keys`."""
LOST_KEY = (
    "SELECT 1 FROM lgrb_effects WHERE (intent_type LIKE '%+%' "
    "OR outcome_type LIKE '%+%' OR undo_type LIKE '%+%') "
    f"AND NOT EXISTS (SELECT 1 FROM lgrb_keys WHERE name = '{DIGEST}') LIMIT 1"
)
"""A row of an encrypted effect while the digest key is missing. Run it
without parameters (its `%` are LIKE's, not placeholders)."""


def keyed_before(version: int | None) -> bool:
    """Whether a ledger at `version` (before set-up) had `lgrb_keys`."""
    return version is not None and int(version) >= KEYS_VERSION


def check_key_kept(row: Sequence[Any] | None) -> None:
    """Refuse a ledger whose `LOST_KEY` query found a row.

    Raises:
        InvalidConfigError: The digest key row is gone but effects keyed by
            it are there.
    """
    if row is not None:
        raise InvalidConfigError(
            f"The ledger's digest key (row {DIGEST!r} of table lgrb_keys) is "
            "missing, but the ledger holds encrypted effects whose call keys "
            "were made under it; a new key would make their replays miss them "
            "and call the tools again. Fix: restore the lgrb_keys row from a "
            "backup of this database."
        )


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
