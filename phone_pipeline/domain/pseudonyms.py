"""Keyed pseudonyms for phone numbers.

A plain hash of a phone number is not a pseudonym: a national numbering space holds 10^8 to 10^10
values and one core hashes millions a second, so every hash can be reversed by enumeration. A keyed
HMAC-SHA256, whose key is kept apart from the data (GDPR Art. 4(5)), cannot be enumerated without
the key. The key version travels in the pseudonym so that a key rotation never mixes silently.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

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


# --- several keys, one primary --------------------------------------------------------------------

_VERSION_PREFIX = re.compile(r"^v([0-9]+):")


def key_version_of(pseudonym: str) -> int | None:
    """The key version a pseudonym was made with, None when it is not a pseudonym."""
    match = _VERSION_PREFIX.match(pseudonym or "")
    return int(match.group(1)) if match and is_pseudonym(pseudonym) else None


class Keyring:
    """Pseudonym keys by version, and which one is primary (used for new pseudonyms).

    Older versions stay configured for reading: matching the erasure register, and re-pseudonymising
    partitions written under them (`phone-pipeline rotate-keys`). The keys are never shown.
    """

    def __init__(self, keys: dict[int, bytes], primary_version: int | None = None) -> None:
        if not keys:
            raise PseudonymKeyError("no pseudonym key is configured")
        self._pseudonymizers = {
            version: Pseudonymizer(key, version) for version, key in sorted(keys.items())
        }
        primary = max(keys) if primary_version in (None, 0) else primary_version
        if primary not in keys:
            raise PseudonymKeyError(
                f"the primary pseudonym key version {primary} is not among the configured "
                f"versions {sorted(keys)}"
            )
        self.primary_version = primary

    def __repr__(self) -> str:
        return f"Keyring(versions={self.versions}, primary={self.primary_version}, keys=<hidden>)"

    @property
    def versions(self) -> list[int]:
        return sorted(self._pseudonymizers)

    @property
    def primary(self) -> Pseudonymizer:
        return self._pseudonymizers[self.primary_version]

    def pseudonymizers(self) -> dict[int, Pseudonymizer]:
        return dict(self._pseudonymizers)


def parse_keys(spec: str, source: str = "PHONE_PIPELINE_PSEUDONYM_KEYS") -> dict[int, bytes]:
    """`1:<hex>,2:<hex>` (commas or new lines; `#` starts a comment) -> key bytes by version.

    Each key is checked like a single key (at least 256 bits). Messages name the entry by its
    position and version, never by its value.
    """
    keys: dict[int, bytes] = {}
    entries = [
        entry.strip()
        for line in spec.splitlines()
        for entry in line.split("#", 1)[0].split(",")
        if entry.strip()
    ]
    if not entries:
        raise PseudonymKeyError(f"{source} holds no key")
    for position, entry in enumerate(entries, start=1):
        version_text, separator, secret = entry.partition(":")
        if not separator or not version_text.strip().isdigit() or int(version_text) < 1:
            raise PseudonymKeyError(
                f"{source}: entry {position} is not `<version>:<key>` with a positive version"
            )
        version = int(version_text)
        if version in keys:
            raise PseudonymKeyError(f"{source}: key version {version} is given twice")
        try:
            keys[version] = decode_key(secret)
        except PseudonymKeyError as error:
            problem = str(error).removeprefix("PHONE_PIPELINE_PSEUDONYM_KEY ")
            raise PseudonymKeyError(f"{source}: key version {version} {problem}") from None
    return keys


def check_key_file_location(path: Path, forbidden: Iterable[Path]) -> Path:
    """The key file, refused when it lies inside a folder it must stay out of (the data home, the
    repository): a key next to the data it protects is no safeguard."""
    resolved = path.expanduser().resolve()
    for folder in forbidden:
        root = folder.expanduser().resolve()
        if resolved == root or root in resolved.parents:
            raise PseudonymKeyError(
                f"the pseudonym key file must be kept outside {root} (found inside it)"
            )
    if not resolved.is_file():
        raise PseudonymKeyError(f"the pseudonym key file {resolved} does not exist")
    return resolved


def build_keyring(
    single_key: str | None = None,
    single_version: int = 1,
    keys_spec: str | None = None,
    key_file_text: str | None = None,
    primary_version: int | None = None,
) -> Keyring:
    """The keyring from whichever is configured: several keys (`PHONE_PIPELINE_PSEUDONYM_KEYS`),
    a key file (same format), and/or the single key of older setups (`PHONE_PIPELINE_PSEUDONYM_KEY`
    with its version). A version given twice with different keys is refused."""
    keys: dict[int, bytes] = {}
    sources = []
    if keys_spec and keys_spec.strip():
        sources.append(parse_keys(keys_spec))
    if key_file_text is not None:
        sources.append(parse_keys(key_file_text, source="the pseudonym key file"))
    if single_key or not sources:
        sources.append({single_version: decode_key(single_key)})
    for source in sources:
        for version, key in source.items():
            if version in keys and keys[version] != key:
                raise PseudonymKeyError(f"key version {version} is configured with two keys")
            keys[version] = key
    return Keyring(keys, primary_version)


# --- rotation and never mixing versions -----------------------------------------------------------


class MixedKeyVersionsError(ValueError):
    """Pseudonyms of different key versions would meet in one join or aggregate."""


def key_versions_sql(table: str, columns: Iterable[str], where: str = "TRUE") -> str:
    """SQL: the distinct key versions (INTEGER) of the pseudonyms in `columns` of `table`."""
    # Distinct pseudonyms first (a UNION of the columns), then the pattern: at 10M rows, matching
    # every value cost 4x more.
    values = " UNION ".join(
        f"SELECT {column} AS value FROM {table} WHERE {where}" for column in columns
    )
    return f"""
        SELECT DISTINCT CAST(regexp_extract(value, '^v([0-9]+):', 1) AS INTEGER) AS key_version
        FROM ({values})
        WHERE value IS NOT NULL ORDER BY 1
    """


def require_one_key_version(versions: Iterable[int | None], what: str) -> int | None:
    """The one key version of the pseudonyms a consumer is about to join or count across
    partitions; raises MixedKeyVersionsError when there are several (run `phone-pipeline
    rotate-keys` first). None when there is no pseudonym at all."""
    distinct = sorted({version for version in versions if version is not None})
    if len(distinct) > 1:
        raise MixedKeyVersionsError(
            f"{what} holds pseudonyms of key versions {distinct}: they cannot be joined or "
            "counted together; re-pseudonymise with `phone-pipeline rotate-keys` first"
        )
    return distinct[0] if distinct else None


@dataclass(frozen=True)
class RotationPlan:
    """Which published partitions `rotate-keys` re-pseudonymises and which it can only mark."""

    primary_version: int
    rerun: list[dt.date]  # older version, restricted rows still there: re-materialised
    stale: list[dt.date]  # older version, restricted rows gone: marked, kept as they are
    current: list[dt.date]  # already under the primary version


def plan_rotation(
    published_versions: Mapping[dt.date, Iterable[int]],
    restricted_rows: Mapping[dt.date, int],
    primary_version: int,
) -> RotationPlan:
    """Partitions (call dates) by what rotation does to them: a partition is current when all its
    pseudonyms use the primary version; else it is re-run when its admitted calls are still in the
    restricted zone (`consented_calls`), or marked as stale when they are gone (retention)."""
    rerun, stale, current = [], [], []
    for day, versions in sorted(published_versions.items()):
        if set(versions) <= {primary_version}:
            current.append(day)
        elif restricted_rows.get(day, 0) > 0:
            rerun.append(day)
        else:
            stale.append(day)
    return RotationPlan(primary_version, rerun, stale, current)
