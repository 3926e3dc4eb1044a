"""Keyed pseudonyms for phone numbers.

A plain hash of a phone number is not a pseudonym: a national numbering space holds 10^8 to 10^10
values and one core hashes millions a second, so every hash can be reversed by enumeration. A keyed
HMAC-SHA256, whose key is kept apart from the data (GDPR Art. 4(5)), cannot be enumerated without
the key. The key version travels in the pseudonym so that a key rotation never mixes silently.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

MIN_KEY_BYTES = 32  # 256-bit keys
DIGEST_HEX_CHARS = 32  # keep 128 bits of the HMAC output
PSEUDONYM_PATTERN = re.compile(r"^v[0-9]+:[0-9a-f]{32}$")
# The same pattern for SQL (DuckDB regexp_full_match) and Great Expectations.
PSEUDONYM_REGEX = PSEUDONYM_PATTERN.pattern
# Domain separation: a key used for phone numbers yields nothing comparable for other identifiers.
_CONTEXT = b"phone_pipeline/phone-number/"


class PseudonymKeyError(ValueError):
    """The pseudonym key is missing or too weak. The message never contains the key."""


def decode_key(secret: str | None) -> bytes:
    """Turn the configured secret into key bytes: hex when it is hex, else its UTF-8 bytes."""
    if not secret:
        raise PseudonymKeyError(
            "PHONE_PIPELINE_PSEUDONYM_KEY is not set: set it to a secret of at least 32 bytes "
            "(for example 64 hex characters from `python -c 'import secrets; "
            "print(secrets.token_hex(32))'`), kept outside the repository and the data home."
        )
    secret = secret.strip()
    try:
        key = bytes.fromhex(secret) if len(secret) % 2 == 0 else secret.encode()
    except ValueError:
        key = secret.encode()
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymKeyError(
            f"PHONE_PIPELINE_PSEUDONYM_KEY is too short: {len(key) * 8} bits, at least "
            f"{MIN_KEY_BYTES * 8} bits are required."
        )
    return key


class Pseudonymizer:
    """HMAC-SHA256 pseudonyms of E.164 numbers, tagged with the key version."""

    def __init__(self, key: bytes, key_version: int) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise PseudonymKeyError(f"pseudonym key must be at least {MIN_KEY_BYTES * 8} bits")
        if key_version < 1:
            raise PseudonymKeyError("pseudonym key version must be a positive integer")
        self._key = key
        self.key_version = key_version

    def __repr__(self) -> str:  # never show the key, even in a traceback's locals
        return f"Pseudonymizer(key_version={self.key_version}, key=<hidden>)"

    def pseudonym(self, e164: str) -> str:
        digest = hmac.new(self._key, _CONTEXT + e164.encode(), hashlib.sha256).hexdigest()
        return f"v{self.key_version}:{digest[:DIGEST_HEX_CHARS]}"

    def pseudonyms(self, numbers: Iterable[str]) -> dict[str, str]:
        """Pseudonyms of distinct numbers, to be joined back to the rows in SQL."""
        return {number: self.pseudonym(number) for number in set(numbers)}


def is_pseudonym(value: str) -> bool:
    return bool(PSEUDONYM_PATTERN.fullmatch(value))
