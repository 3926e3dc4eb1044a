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
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from phone_pipeline.settings import env_name

MIN_KEY_BYTES = 32  # 256-bit keys
# A text key must be rated at least this many guesses by zxcvbn: 2^128, the 128-bit security
# level. zxcvbn rates a character it cannot explain as 10 guesses (a deliberately low figure), so a
# random text key needs about 39 characters; `secrets.token_urlsafe(32)` (43) passes, dictionary
# passphrases and repeated characters do not.
MIN_TEXT_KEY_GUESSES_LOG10 = 128 * math.log10(2)
_ZXCVBN_MAX_CHARS = 72  # zxcvbn refuses longer input; the first 72 characters are rated
DIGEST_HEX_CHARS = 32  # keep 128 bits of the HMAC output
PSEUDONYM_PATTERN = re.compile(r"^v[0-9]+:[0-9a-f]{32}$")
# The same pattern for SQL (DuckDB regexp_full_match) and Great Expectations.
PSEUDONYM_REGEX = PSEUDONYM_PATTERN.pattern
# Domain separation: a key used for phone numbers yields nothing comparable for other identifiers.
_CONTEXT = b"phone_pipeline/phone-number/"
# The fingerprint is an HMAC of this fixed label (not a phone number: it can never equal a
# pseudonym), so the warehouse can tell keys apart without holding anything that reveals a key.
_FINGERPRINT_LABEL = b"phone_pipeline/key-fingerprint"
FINGERPRINT_HEX_CHARS = 16
KEY_HOWTO = "make one with: python3 -c 'import secrets; print(secrets.token_hex(32))'"
_HEX_KEY = re.compile(r"[0-9a-fA-F]+")


class PseudonymKeyError(ValueError):
    """The pseudonym key is missing or too weak. The message never contains the key."""


class KeyMismatchError(PseudonymKeyError):
    """The configured key is not the one the warehouse was written with."""


def _repeats_a_pattern(key: bytes) -> int | None:
    """The length of the shortest block the key is a repetition of, None when it is none."""
    for period in range(1, len(key) // 2 + 1):
        if len(key) % period == 0 and key == key[:period] * (len(key) // period):
            return period
    return None


def byte_key_weakness(key: bytes) -> str | None:
    """Why random-looking key bytes are not random, or None. 32 random bytes show about 30
    distinct values and 30 distinct steps between neighbours; fewer than half of what random
    bytes show (at most 64 of either) is a pattern, a counter or a typed-in value, not a key."""
    period = _repeats_a_pattern(key)
    if period is not None:
        return f"repeats a {period}-byte pattern"
    needed = min(len(key), 128) // 2
    distinct = len(set(key))
    if distinct < needed:
        return f"has only {distinct} distinct byte values (a random key has about {needed * 2})"
    steps = len({(b - a) % 256 for a, b in zip(key, key[1:], strict=False)})
    if steps < needed:
        return f"is a sequence: only {steps} distinct steps between its bytes"
    return None


def text_key_weakness(text: str) -> str | None:
    """Why a text key is guessable (zxcvbn's estimate below 2^128 guesses), or None."""
    from zxcvbn import zxcvbn  # imported only for text keys

    # Rated without whitespace: zxcvbn counts each space as a random character, which makes a
    # well-known sentence look strong; spaces between words add next to nothing for a guesser.
    guesses_log10 = zxcvbn("".join(text.split())[:_ZXCVBN_MAX_CHARS])["guesses_log10"]
    if guesses_log10 < MIN_TEXT_KEY_GUESSES_LOG10:
        bits = int(guesses_log10 / math.log10(2))
        return (
            f"is guessable: a password estimator (zxcvbn) rates it at about {bits} bits, "
            "at least 128 bits are required (words, names, repeats and sequences count little)"
        )
    return None


def decode_key(secret: str | None) -> bytes:
    """The configured secret as key bytes, refused when weak. Hex digits only: a hex key, which
    must be whole (an even number of digits, at least 64) and random-looking; anything else: the
    UTF-8 bytes of a text key, at least 32 bytes and rated at least 2^128 guesses. Messages say
    what is wrong and how to make a key, never the key."""
    if not secret:
        raise PseudonymKeyError(
            f"{env_name('key')} is not set: set it to a secret of at least 32 bytes "
            "(64 hex characters), kept outside the repository and the data home; "
            f"{KEY_HOWTO}"
        )
    secret = secret.strip()
    problem = None
    if _HEX_KEY.fullmatch(secret):
        # Read as text, a hex key cut short by one digit would silently change every pseudonym.
        digits = len(secret)
        if digits % 2:
            problem = (
                f"looks like hex but has an odd number of hex digits ({digits}): a hex key "
                f"needs an even number, at least {MIN_KEY_BYTES * 2} ({MIN_KEY_BYTES * 8} bits)"
            )
        elif digits < MIN_KEY_BYTES * 2:
            problem = (
                f"is too short: {digits} hex digits ({digits * 4} bits), at least "
                f"{MIN_KEY_BYTES * 2} hex digits ({MIN_KEY_BYTES * 8} bits) are required"
            )
        else:
            key = bytes.fromhex(secret)
            weakness = byte_key_weakness(key)
            problem = f"is not random: it {weakness}" if weakness else None
    else:
        key = secret.encode()
        if len(key) < MIN_KEY_BYTES:
            problem = (
                f"is too short: {len(key)} bytes of text ({len(key) * 8} bits), at least "
                f"{MIN_KEY_BYTES} bytes ({MIN_KEY_BYTES * 8} bits) are required"
            )
        else:
            problem = text_key_weakness(secret)
    if problem:
        raise PseudonymKeyError(f"{env_name('key')} {problem}; {KEY_HOWTO}")
    return key


def key_fingerprint(key: bytes) -> str:
    """A short HMAC of a fixed label under the key: equal keys, equal fingerprints; it reveals
    nothing of the key (recovering a key from it means brute-forcing a 256-bit key)."""
    digest = hmac.new(key, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()
    return digest[:FINGERPRINT_HEX_CHARS]


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


# The columns of the map `Pseudonymizer.pseudonyms` returns, as stages join it back in SQL, with
# what each is computed from (column lineage): a pseudonym from its number alone (and the key,
# which is no column).
PSEUDONYM_MAP_INPUTS: dict[str, tuple[str, ...]] = {"e164": (), "pseudonym": ("e164",)}


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

    def fingerprints(self) -> dict[int, str]:
        """`key_fingerprint` of each configured key, by version."""
        return {
            version: key_fingerprint(pseudonymizer._key)
            for version, pseudonymizer in self._pseudonymizers.items()
        }


ROTATION_HOWTO = (
    "to change keys, rotate: keep the old key under its version and add the new one under a "
    f"higher version ({env_name('versioned_keys')}=1:<old key>,2:<new key>), then run "
    "`phone-pipeline rotate-keys` (README: Troubleshooting, A key the pipeline refuses)"
)


def check_fingerprints(recorded: Mapping[int, str], keyring: Keyring) -> dict[int, str]:
    """Refuse a keyring that does not fit the warehouse (KeyMismatchError); returns the
    fingerprints of configured versions the warehouse does not know yet, to be recorded.

    Every configured version the warehouse knows must be the same key, and while the warehouse
    knows any version, at least one of them must be configured: a new key alone would rename
    every subject and leave the erasure register unmatched. A rotation under way configures the
    old version beside the new one; once it is done, the new version alone fits.
    """
    configured = keyring.fingerprints()
    differing = sorted(v for v in configured if v in recorded and recorded[v] != configured[v])
    if differing:
        raise KeyMismatchError(
            f"pseudonym key version {differing[0]} is not the key this warehouse was written "
            "with (their fingerprints differ): every pseudonym would change and erasure requests "
            "would stop matching. Set the key the warehouse was written with; "
            f"{ROTATION_HOWTO}"
        )
    if recorded and not set(recorded) & set(configured):
        raise KeyMismatchError(
            f"this warehouse was written with pseudonym key version(s) {sorted(recorded)}, none "
            f"of which is configured (configured: {sorted(configured)}): every pseudonym would "
            f"change and erasure requests would stop matching. Set the key the warehouse was "
            f"written with; {ROTATION_HOWTO}"
        )
    return {v: fingerprint for v, fingerprint in configured.items() if v not in recorded}


def parse_keys(spec: str, source: str = env_name("versioned_keys")) -> dict[int, bytes]:
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
            problem = str(error).removeprefix(f"{env_name('key')} ")
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
