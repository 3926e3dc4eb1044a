"""Unit tests for phone_pipeline.domain.pseudonyms (keyed pseudonyms of E.164 numbers).

Test keys only; fictional numbers only (NANP 212-555-01xx, UK 020 7946 0xxx).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import duckdb
import pytest

from phone_pipeline.domain.pseudonyms import (
    DIGEST_HEX_CHARS,
    MIN_KEY_BYTES,
    PSEUDONYM_REGEX,
    Pseudonymizer,
    PseudonymKeyError,
    byte_key_weakness,
    decode_key,
    is_pseudonym,
    key_fingerprint,
)

NY = "+12125550123"
LONDON = "+442079460123"
KEY_HEX = "03974826789b00376962bc40c2f10851815f1d1d844236f4c80c108d02e02aff"
KEY = bytes.fromhex(KEY_HEX)
OTHER_KEY = bytes.fromhex("f586fa71769c079d58b18230ddfaf78398677f02e671628971f51a3cce5809f9")
TEXT_SECRET = "Vq3_hZ0rTf8-LmW2yQxK9sNcB4eJu7PdAa1GiRoYt6E"  # secrets.token_urlsafe(32): text


def sql_full_match(value: str) -> bool:
    """What the SQL side (DuckDB regexp_full_match on PSEUDONYM_REGEX) says of a value."""
    with duckdb.connect() as con:
        return con.execute("SELECT regexp_full_match(?, ?)", [value, PSEUDONYM_REGEX]).fetchone()[0]


def test_same_number_same_pseudonym_across_instances() -> None:
    first = Pseudonymizer(KEY, 1)
    second = Pseudonymizer(bytes(KEY), 1)  # an equal key in another object
    assert first.pseudonym(NY) == second.pseudonym(NY)
    assert first.pseudonym(NY) == first.pseudonym(NY)
    assert first.pseudonym(LONDON) == second.pseudonym(LONDON)


def test_different_numbers_different_pseudonyms() -> None:
    pseudonymizer = Pseudonymizer(KEY, 1)
    numbers = [f"+1212555{n:04d}" for n in range(100, 200)]
    assert len({pseudonymizer.pseudonym(number) for number in numbers}) == len(numbers)


def test_different_key_different_pseudonym() -> None:
    assert Pseudonymizer(KEY, 1).pseudonym(NY) != Pseudonymizer(OTHER_KEY, 1).pseudonym(NY)
    # A one-bit change of the key is enough.
    flipped = bytes([KEY[0] ^ 1]) + KEY[1:]
    assert Pseudonymizer(KEY, 1).pseudonym(NY) != Pseudonymizer(flipped, 1).pseudonym(NY)


def test_version_prefix_and_format() -> None:
    for version in (1, 2, 17):
        pseudonym = Pseudonymizer(KEY, version).pseudonym(NY)
        prefix, _, digest = pseudonym.partition(":")
        assert prefix == f"v{version}"
        assert re.fullmatch(r"[0-9a-f]+", digest)
        assert len(digest) == DIGEST_HEX_CHARS == 32  # 128 bits
        assert is_pseudonym(pseudonym)
    # Rotating the key version changes only the prefix when the key is the same.
    v1 = Pseudonymizer(KEY, 1).pseudonym(NY)
    v2 = Pseudonymizer(KEY, 2).pseudonym(NY)
    assert v1 != v2
    assert v1.split(":")[1] == v2.split(":")[1]


@pytest.mark.parametrize(
    "value",
    [
        "",
        NY,
        "1:" + "0" * 32,
        "v:" + "0" * 32,
        "v1:" + "0" * 31,
        "v1:" + "0" * 33,
        "v1:" + "A" * 32,  # upper-case hex is not what we produce
        "v1:" + "g" * 32,
        "V1:" + "0" * 32,
        " v1:" + "0" * 32,
        "v1:" + "0" * 32 + " ",
        "v1-" + "0" * 32,
    ],
)
def test_is_pseudonym_rejects(value: str) -> None:
    assert not is_pseudonym(value)


def test_is_pseudonym_rejects_trailing_newline_like_sql_does() -> None:
    value = Pseudonymizer(KEY, 1).pseudonym(NY) + "\n"
    assert sql_full_match(value) is False
    assert not is_pseudonym(value)


def test_python_and_sql_patterns_agree_on_real_pseudonyms() -> None:
    values = [Pseudonymizer(KEY, version).pseudonym(NY) for version in (1, 9, 10)]
    for value in values:
        assert sql_full_match(value) is True
        assert is_pseudonym(value)


def test_pseudonym_is_keyed_not_a_plain_hash() -> None:
    digest = Pseudonymizer(KEY, 1).pseudonym(NY).split(":")[1]
    plain_hashes = [
        hashlib.sha256(NY.encode()).hexdigest(),
        hashlib.sha256(NY.lstrip("+").encode()).hexdigest(),
        hashlib.md5(NY.encode()).hexdigest(),
        hashlib.sha1(NY.encode()).hexdigest(),
        hashlib.sha256(b"phone_pipeline/phone-number/" + NY.encode()).hexdigest(),
    ]
    for plain in plain_hashes:
        assert not plain.startswith(digest)
        assert digest not in plain
    # It is an HMAC under the key: recomputable with the key, and only with it.
    candidates = [
        hmac.new(key, message, hashlib.sha256).hexdigest()[:DIGEST_HEX_CHARS]
        for key in (KEY, OTHER_KEY)
        for message in (NY.encode(), b"phone_pipeline/phone-number/" + NY.encode())
    ]
    assert candidates.count(digest) == 1
    assert digest == candidates[1]  # KEY with the domain-separation context


def test_pseudonyms_over_duplicates() -> None:
    pseudonymizer = Pseudonymizer(KEY, 3)
    numbers = [NY, LONDON, NY, NY, LONDON]
    mapping = pseudonymizer.pseudonyms(numbers)
    assert mapping == {NY: pseudonymizer.pseudonym(NY), LONDON: pseudonymizer.pseudonym(LONDON)}
    assert pseudonymizer.pseudonyms(iter(numbers)) == mapping  # any iterable, read once
    assert pseudonymizer.pseudonyms([]) == {}


def test_repr_hides_the_key() -> None:
    pseudonymizer = Pseudonymizer(KEY, 4)
    for text in (repr(pseudonymizer), str(pseudonymizer), f"{pseudonymizer!r}"):
        assert KEY_HEX not in text
        assert KEY.hex() not in text.lower()
        assert repr(KEY) not in text
        assert "key_version=4" in text
    # The key is not reachable through vars() under a public name either.
    assert all(name.startswith("_") or value != KEY for name, value in vars(pseudonymizer).items())


@pytest.mark.parametrize("key", [b"", b"x" * (MIN_KEY_BYTES - 1)])
def test_pseudonymizer_refuses_short_keys(key: bytes) -> None:
    with pytest.raises(PseudonymKeyError):
        Pseudonymizer(key, 1)


@pytest.mark.parametrize("version", [0, -1])
def test_pseudonymizer_refuses_non_positive_versions(version: int) -> None:
    with pytest.raises(PseudonymKeyError):
        Pseudonymizer(KEY, version)


# --- decode_key ---------------------------------------------------------------------------------


def test_decode_key_hex() -> None:
    assert decode_key(KEY_HEX) == KEY
    assert decode_key(KEY_HEX.upper()) == KEY
    assert decode_key(f"  {KEY_HEX}\n") == KEY  # surrounding whitespace from a .env file
    generated = secrets.token_hex(32)
    assert decode_key(generated) == bytes.fromhex(generated)


def test_decode_key_text() -> None:
    assert decode_key(TEXT_SECRET) == TEXT_SECRET.encode()
    odd = TEXT_SECRET + "?"  # odd length: never read as hex
    assert decode_key(odd) == odd.encode()
    unicode_secret = "schlüssel-" + TEXT_SECRET  # multi-byte UTF-8 counts in bytes
    assert decode_key(unicode_secret) == unicode_secret.encode("utf-8")


def test_hex_and_text_readings_give_different_pseudonyms() -> None:
    # The same 64 characters read as hex (32 bytes) are not the same key as their text bytes.
    as_hex = Pseudonymizer(decode_key(KEY_HEX), 1)
    as_text = Pseudonymizer(KEY_HEX.encode(), 1)
    assert as_hex.pseudonym(NY) != as_text.pseudonym(NY)
    assert as_hex.pseudonym(NY) == Pseudonymizer(KEY, 1).pseudonym(NY)


@pytest.mark.parametrize("secret", [None, ""])
def test_decode_key_missing(secret: str | None) -> None:
    with pytest.raises(PseudonymKeyError, match="not set"):
        decode_key(secret)


@pytest.mark.parametrize(
    "secret",
    [
        "a1b2c3d4e5f60718293a4b5c6d7e8f90",  # 32 hex chars = only 16 bytes
        "c0ffee" * 10 + "ab",  # 62 hex chars = 31 bytes
        "hunter2-is-not-a-key",  # 20 bytes of text
        "tiny-secret-odd",
    ],
)
def test_decode_key_too_short_without_leaking_it(secret: str) -> None:
    with pytest.raises(PseudonymKeyError, match="too short") as caught:
        decode_key(secret)
    message = str(caught.value)
    assert secret not in message
    assert secret.lower() not in message.lower()
    # Nor in whatever exception it was raised from or while handling.
    for linked in (caught.value.__cause__, caught.value.__context__):
        assert linked is None or secret not in str(linked)
    assert "256 bits" in message


def test_decode_key_missing_message_has_no_key_material(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PHONE_PIPELINE_PSEUDONYM_KEY", KEY_HEX)  # present elsewhere, not passed
    with pytest.raises(PseudonymKeyError) as caught:
        decode_key(None)
    assert KEY_HEX not in str(caught.value)


def test_key_error_is_a_value_error() -> None:
    assert issubclass(PseudonymKeyError, ValueError)


def test_minimum_key_length_boundary() -> None:
    assert decode_key(KEY_HEX) == KEY  # 64 hex digits: 256 bits
    with pytest.raises(PseudonymKeyError, match="too short"):
        decode_key(KEY_HEX[:-2])  # 62 hex digits
    with pytest.raises(PseudonymKeyError, match="too short"):
        decode_key(TEXT_SECRET[: MIN_KEY_BYTES - 1])


# --- weak keys are refused, saying why and how to make one, never showing the key --------------

WEAK_KEYS = {
    "64 hex zeros": ("0" * 64, "not random"),
    "one byte repeated": ("7f" * 32, "not random"),
    "a short block repeated": ("c0ffee12" * 8, "repeats a 4-byte pattern"),
    "a counter": (bytes(range(32)).hex(), "sequence"),
    "z * 32": ("z" * 32, "guessable"),
    "dictionary passphrase of 32 characters": ("correcthorsebatterystaplesunrise", "guessable"),
    "an English sentence": ("The quick brown fox jumps over the lazy dog", "guessable"),
    "63 hex digits": (secrets.token_hex(32)[:63], "odd number of hex digits"),
    "65 hex digits": (secrets.token_hex(33)[:65], "odd number of hex digits"),
}


@pytest.mark.parametrize("name", list(WEAK_KEYS))
def test_weak_keys_are_refused_with_the_reason_and_how_to_make_one(name: str) -> None:
    secret, reason = WEAK_KEYS[name]
    with pytest.raises(PseudonymKeyError, match=reason) as caught:
        decode_key(secret)
    message = str(caught.value)
    assert "secrets.token_hex(32)" in message
    assert secret not in message and secret.lower() not in message.lower()
    for linked in (caught.value.__cause__, caught.value.__context__):
        assert linked is None or secret not in str(linked)


def test_a_hex_key_one_digit_short_is_never_read_as_text() -> None:
    """63 hex digits once became a text key: every pseudonym changed without a word."""
    with pytest.raises(PseudonymKeyError, match=r"hex digits \(63\)"):
        decode_key(KEY_HEX[:63])


def test_generated_keys_always_pass() -> None:
    """The rule must not refuse what the documented commands make."""
    for _ in range(300):
        hex_key = secrets.token_hex(32)
        assert decode_key(hex_key) == bytes.fromhex(hex_key)
        text_key = secrets.token_urlsafe(32)
        assert decode_key(text_key) == text_key.encode()
    long_hex = secrets.token_hex(64)  # 512 bits is fine too
    assert decode_key(long_hex) == bytes.fromhex(long_hex)


def test_byte_key_weakness_of_random_bytes_is_none() -> None:
    for _ in range(1000):
        assert byte_key_weakness(secrets.token_bytes(32)) is None


def test_key_fingerprint_tells_keys_apart_and_reveals_nothing() -> None:
    fingerprint = key_fingerprint(KEY)
    assert fingerprint == key_fingerprint(bytes(KEY)) != key_fingerprint(OTHER_KEY)
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint)
    assert fingerprint not in KEY_HEX and fingerprint not in Pseudonymizer(KEY, 1).pseudonym(NY)
