"""Unit tests for several pseudonym keys, the key file's place, and rotation planning."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from phone_pipeline.domain.pseudonyms import (
    KeyMismatchError,
    Keyring,
    MixedKeyVersionsError,
    Pseudonymizer,
    PseudonymKeyError,
    build_keyring,
    check_fingerprints,
    check_key_file_location,
    key_fingerprint,
    key_version_of,
    key_versions_sql,
    parse_keys,
    plan_rotation,
    require_one_key_version,
)

ONE = "9d917cd5f112618f51d178c24fa42c7f4d494a71fe8e74535c865f07ec886cd9"
TWO = "03974826789b00376962bc40c2f10851815f1d1d844236f4c80c108d02e02aff"
THREE = "f586fa71769c079d58b18230ddfaf78398677f02e671628971f51a3cce5809f9"
NY = "+12125550123"


def test_parse_keys_by_version_commas_lines_and_comments() -> None:
    keys = parse_keys(f"1:{ONE}, 2:{TWO}\n# retired later\n3:{THREE}  # newest")
    assert keys == {1: bytes.fromhex(ONE), 2: bytes.fromhex(TWO), 3: bytes.fromhex(THREE)}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "holds no key"),
        (ONE, "entry 1 is not"),
        (f"0:{ONE}", "positive version"),
        (f"1:{ONE},1:{TWO}", "given twice"),
        ("2:abcdef", "too short"),
    ],
)
def test_bad_key_specs_are_refused_without_showing_a_key(spec: str, message: str) -> None:
    with pytest.raises(PseudonymKeyError, match=message) as error:
        parse_keys(spec)
    assert ONE not in str(error.value) and TWO not in str(error.value)
    assert "abcdef" not in str(error.value)


def test_highest_version_is_primary_unless_configured() -> None:
    keyring = build_keyring(keys_spec=f"1:{ONE},2:{TWO}")
    assert keyring.primary_version == 2 and keyring.versions == [1, 2]
    assert keyring.primary.pseudonym(NY) == Pseudonymizer(bytes.fromhex(TWO), 2).pseudonym(NY)
    assert build_keyring(keys_spec=f"1:{ONE},2:{TWO}", primary_version=1).primary_version == 1
    with pytest.raises(PseudonymKeyError, match="primary pseudonym key version 3"):
        build_keyring(keys_spec=f"1:{ONE},2:{TWO}", primary_version=3)
    assert ONE not in repr(keyring) and "hidden" in repr(keyring)


def test_single_key_of_older_setups_still_works_and_combines() -> None:
    assert build_keyring(ONE, 1).versions == [1]
    assert build_keyring(ONE, 4).primary.pseudonym(NY).startswith("v4:")
    # The single key and the list agree on v1: fine; disagree: refused.
    assert build_keyring(ONE, 1, f"1:{ONE},2:{TWO}").versions == [1, 2]
    with pytest.raises(PseudonymKeyError, match="two keys"):
        build_keyring(THREE, 1, f"1:{ONE},2:{TWO}")
    with pytest.raises(PseudonymKeyError, match="not set"):
        build_keyring(None)
    with pytest.raises(PseudonymKeyError):
        Keyring({})


def test_key_file_must_stay_outside_the_data_home_and_the_repository(tmp_path: Path) -> None:
    home, secrets = tmp_path / "data", tmp_path / "secrets"
    home.mkdir(), secrets.mkdir()
    inside, outside = home / "keys.txt", secrets / "keys.txt"
    for path in (inside, outside):
        path.write_text(f"1:{ONE}\n")
    with pytest.raises(PseudonymKeyError, match="outside"):
        check_key_file_location(inside, [home])
    assert check_key_file_location(outside, [home]) == outside.resolve()
    with pytest.raises(PseudonymKeyError, match="does not exist"):
        check_key_file_location(secrets / "missing.txt", [home])


def test_key_versions_of_pseudonyms_and_refusing_to_mix() -> None:
    v1 = Pseudonymizer(bytes.fromhex(ONE), 1).pseudonym(NY)
    v2 = Pseudonymizer(bytes.fromhex(TWO), 2).pseudonym(NY)
    assert (key_version_of(v1), key_version_of(v2), key_version_of(NY)) == (1, 2, None)
    assert require_one_key_version([1, 1, None], "table") == 1
    assert require_one_key_version([], "table") is None
    with pytest.raises(MixedKeyVersionsError, match=r"\[1, 2\]"):
        require_one_key_version([1, 2], "calls_pseudonymized")
    with duckdb.connect() as con:
        con.execute("CREATE TABLE t (a VARCHAR, b VARCHAR)")
        con.execute("INSERT INTO t VALUES (?, NULL), (?, ?)", [v1, v1, v2])
        assert [r[0] for r in con.execute(key_versions_sql("t", ["a", "b"])).fetchall()] == [1, 2]


def test_rotation_plan() -> None:
    d1, d2, d3, d4 = (dt.date(2026, 11, day) for day in (1, 2, 3, 4))
    plan = plan_rotation({d1: {1}, d2: {1}, d3: {2}, d4: {1}}, {d1: 10, d3: 4, d4: 0}, 2)
    assert (plan.rerun, plan.stale, plan.current) == ([d1], [d2, d4], [d3])


# --- the keys a warehouse was written with --------------------------------------------------------


def test_fingerprints_of_a_new_warehouse_are_all_to_record() -> None:
    keyring = build_keyring(keys_spec=f"1:{ONE},2:{TWO}")
    assert check_fingerprints({}, keyring) == keyring.fingerprints()
    assert keyring.fingerprints() == {
        1: key_fingerprint(bytes.fromhex(ONE)),
        2: key_fingerprint(bytes.fromhex(TWO)),
    }


def test_the_same_key_fits_and_records_nothing_new() -> None:
    recorded = build_keyring(ONE, 1).fingerprints()
    assert check_fingerprints(recorded, build_keyring(ONE, 1)) == {}


def test_another_key_under_the_recorded_version_is_refused() -> None:
    recorded = build_keyring(ONE, 1).fingerprints()
    with pytest.raises(KeyMismatchError, match="version 1 is not the key") as error:
        check_fingerprints(recorded, build_keyring(TWO, 1))
    assert "rotate-keys" in str(error.value)
    assert ONE not in str(error.value) and TWO not in str(error.value)


def test_a_new_key_alone_under_a_new_version_is_refused() -> None:
    recorded = build_keyring(ONE, 1).fingerprints()
    with pytest.raises(KeyMismatchError, match=r"version\(s\) \[1\], none of which"):
        check_fingerprints(recorded, build_keyring(TWO, 2))


def test_a_rotation_keyring_with_the_old_key_fits_and_records_the_new_version() -> None:
    recorded = build_keyring(ONE, 1).fingerprints()
    rotation = build_keyring(keys_spec=f"1:{ONE},2:{TWO}")
    assert check_fingerprints(recorded, rotation) == {2: key_fingerprint(bytes.fromhex(TWO))}
    # Once the rotation is done, the new key alone fits.
    assert check_fingerprints(rotation.fingerprints(), build_keyring(TWO, 2)) == {}
    # A rotation keyring whose old key is not the recorded one is refused all the same.
    with pytest.raises(KeyMismatchError, match="version 1"):
        check_fingerprints(recorded, build_keyring(keys_spec=f"1:{THREE},2:{TWO}"))
