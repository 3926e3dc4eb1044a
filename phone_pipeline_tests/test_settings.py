"""The settings' declarations (settings.py): loading with clear errors, and the README's
configuration table generated from them."""

from __future__ import annotations

import ast
import dataclasses
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from phone_pipeline.settings import (
    SETTING,
    SETTINGS,
    Setting,
    SettingError,
    Settings,
    at_least,
    load_settings,
    markdown_table,
    record_first_day,
)

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_configuration_table() -> str:
    """The table of the README's Configuration section, as it stands."""
    section = README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return "".join(line + "\n" for line in section.splitlines() if line.startswith("|"))


def test_readme_table_is_the_generated_one() -> None:
    assert readme_configuration_table() == markdown_table(), (
        "README's configuration table differs from the declarations: replace it with the output "
        "of `python -m phone_pipeline.settings --markdown`"
    )


def test_every_declared_setting_is_in_the_readme_table_once() -> None:
    rows = readme_configuration_table().splitlines()[2:]
    variables = [row.split("|")[1].strip().strip("`") for row in rows]
    assert sorted(variables) == sorted(setting.env for setting in SETTINGS)
    assert len(set(variables)) == len(variables)


def test_the_module_prints_the_table() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "phone_pipeline.settings", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(README.parent)},
    )
    assert printed.stdout == markdown_table()


def test_settings_are_exactly_the_declared_ones_with_their_types() -> None:
    hints = typing.get_type_hints(Settings)
    loaded = {setting.name: setting for setting in SETTINGS if setting.in_settings}
    assert set(hints) == set(loaded)
    for name, setting in loaded.items():
        # risk_k: 0 in the environment is None (the minimum cell size) in Settings.
        expected = setting.type | None if name == "risk_k" else setting.type
        assert hints[name] == expected, name


def test_names_and_variables_are_unique() -> None:
    assert len({setting.name for setting in SETTINGS}) == len(SETTINGS)
    assert len({setting.env for setting in SETTINGS}) == len(SETTINGS)


def test_each_declared_default_is_allowed_by_its_own_rule() -> None:
    for setting in SETTINGS:
        assert isinstance(setting.default, setting.type), setting.env
        if setting.rule is not None:
            assert setting.rule.accepts(setting.default), setting.env


def test_unset_or_blank_values_load_the_declared_defaults() -> None:
    blank = {setting.env: "  " for setting in SETTINGS}
    for environ in ({}, blank):
        settings = load_settings(environ)
        assert settings.min_cell_size == SETTING["min_cell_size"].default
        assert settings.max_unicity == SETTING["max_unicity"].default
        assert settings.permitted_window == SETTING["permitted_window"].default
        assert settings.home == Path("data").resolve()
        assert settings.risk_k is None


def test_values_are_read_typed_and_finished() -> None:
    settings = load_settings(
        {
            "PHONE_PIPELINE_DEFAULT_REGION": " gb ",
            "PHONE_PIPELINE_RISK_K": "8",
            "PHONE_PIPELINE_MAX_UNICITY": "0.2",
            "PHONE_PIPELINE_SETTLE_SECONDS": "0.5",
            "PHONE_PIPELINE_PERMITTED_CALL_WINDOW": "22:00-06:00",
        }
    )
    assert (settings.default_region, settings.risk_k, settings.max_unicity) == ("GB", 8, 0.2)
    assert (settings.settle_seconds, settings.permitted_window) == (0.5, "22:00-06:00")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PHONE_PIPELINE_MIN_CELL_SIZE", "five", "PHONE_PIPELINE_MIN_CELL_SIZE='five' is not an integer"),
        ("PHONE_PIPELINE_MIN_CELL_SIZE", "0", "PHONE_PIPELINE_MIN_CELL_SIZE='0' is not allowed: must be >= 1"),
        ("PHONE_PIPELINE_MAX_UNICITY", "lots", "PHONE_PIPELINE_MAX_UNICITY='lots' is not a number"),
        ("PHONE_PIPELINE_MAX_UNICITY", "1.5", "PHONE_PIPELINE_MAX_UNICITY='1.5' is not allowed: must be 0 to 1"),
        ("PHONE_PIPELINE_MAX_QUARANTINE_SHARE", "nan", "PHONE_PIPELINE_MAX_QUARANTINE_SHARE='nan' is not allowed"),
        ("PHONE_PIPELINE_DP_EPSILON", "0", "PHONE_PIPELINE_DP_EPSILON='0' is not allowed: must be > 0"),
        ("PHONE_PIPELINE_DP_EPSILON", "inf", "PHONE_PIPELINE_DP_EPSILON='inf' is not allowed: must be > 0"),
        ("PHONE_PIPELINE_RETENTION_RESTRICTED_DAYS", "-5", "PHONE_PIPELINE_RETENTION_RESTRICTED_DAYS='-5' is not allowed: must be >= 0"),
        ("PHONE_PIPELINE_START_DATE", "2024-13-01", "PHONE_PIPELINE_START_DATE='2024-13-01' is not allowed: must be a date, YYYY-MM-DD"),
        ("PHONE_PIPELINE_PERMITTED_CALL_WINDOW", "08:00-08:00", "PHONE_PIPELINE_PERMITTED_CALL_WINDOW='08:00-08:00' is not allowed"),
        ("PHONE_PIPELINE_SENSOR_INTERVAL_SECONDS", "1.5", "PHONE_PIPELINE_SENSOR_INTERVAL_SECONDS='1.5' is not an integer"),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_naming_the_variable(
    variable: str, value: str, message: str
) -> None:
    with pytest.raises(SettingError) as refused:
        load_settings({variable: value})
    assert message in str(refused.value)


def test_every_bad_value_is_reported_at_once() -> None:
    with pytest.raises(SettingError) as refused:
        load_settings({"PHONE_PIPELINE_MIN_CELL_SIZE": "x", "PHONE_PIPELINE_MAX_CALLS_7D": "-1"})
    assert "PHONE_PIPELINE_MIN_CELL_SIZE" in str(refused.value)
    assert "PHONE_PIPELINE_MAX_CALLS_7D" in str(refused.value)


def test_a_secret_value_is_never_in_the_error() -> None:
    secret = Setting(
        "token", "PHONE_PIPELINE_EXAMPLE_TOKEN", int, 1, "example", "nobody", at_least(1),
        secret=True,
    )  # fmt: skip
    for text in ("s3cr3t-Value", "-7"):
        with pytest.raises(SettingError) as refused:
            secret.parse(text)
        assert "PHONE_PIPELINE_EXAMPLE_TOKEN" in str(refused.value)
        assert text not in str(refused.value)


def test_secrets_are_not_loaded_into_settings() -> None:
    secrets = {setting.name for setting in SETTINGS if setting.secret}
    assert secrets == {"key", "versioned_keys"}
    assert not secrets & {field.name for field in dataclasses.fields(Settings)}


PACKAGE = README.parent / "phone_pipeline"
NOT_SCANNED = {PACKAGE / "settings.py"}


def _docstrings(tree: ast.AST) -> set[int]:
    owners = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, owners)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }


def test_variables_are_named_only_by_their_declaration() -> None:
    """Code (not docstrings) gets a variable's name from `env_name`, so that a renamed or removed
    setting cannot leave a message or description naming the old variable."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in NOT_SCANNED:
            continue
        tree = ast.parse(path.read_text())
        docstrings = _docstrings(tree)
        found += [
            f"{path.relative_to(PACKAGE)}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and "PHONE_PIPELINE_" in node.value
            and id(node) not in docstrings
        ]
    assert found == []


# --- the data home's settings file ----------------------------------------------------------------


def _home_env(home: Path, **values: str) -> dict[str, str]:
    return {"PHONE_PIPELINE_HOME": str(home), **values}


def test_the_home_settings_file_is_read_and_the_environment_overrides_it(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text(
        'PHONE_PIPELINE_START_DATE = "2026-11-30"\nPHONE_PIPELINE_MIN_CELL_SIZE = 7\n'
    )
    loaded = load_settings(_home_env(tmp_path))
    assert (loaded.partitions_start_date, loaded.min_cell_size) == ("2026-11-30", 7)
    overridden = load_settings(_home_env(tmp_path, PHONE_PIPELINE_START_DATE="2026-01-01"))
    assert overridden.partitions_start_date == "2026-01-01"
    # Blank in the environment is unset: the file's value holds.
    assert load_settings(_home_env(tmp_path, PHONE_PIPELINE_START_DATE=" ")).min_cell_size == 7
    assert load_settings(_home_env(tmp_path / "elsewhere")).partitions_start_date == "2024-01-01"


def test_a_bad_value_or_name_in_the_home_settings_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('PHONE_PIPELINE_START_DATE = "2026-13-01"\n')
    with pytest.raises(SettingError) as bad_value:
        load_settings(_home_env(tmp_path))
    assert str(bad_value.value) == (
        "PHONE_PIPELINE_START_DATE='2026-13-01' is not allowed: must be a date, YYYY-MM-DD "
        f"(set in {path})"
    )
    secret = "966bbd910326aabd2dd94c1961cc5a336658b453a87304e1b819724b4edada4c"
    path.write_text(f'PHONE_PIPELINE_PSEUDONYM_KEY = "{secret}"\n')
    with pytest.raises(SettingError) as a_key:
        load_settings(_home_env(tmp_path))
    assert f"{path}: PHONE_PIPELINE_PSEUDONYM_KEY cannot be set" in str(a_key.value)
    assert secret not in str(a_key.value)
    path.write_text("PHONE_PIPELINE_START_DATE = \n")
    with pytest.raises(SettingError, match="is not a valid TOML file"):
        load_settings(_home_env(tmp_path))


def test_the_first_day_recorded_is_the_earliest_and_other_values_are_kept(tmp_path: Path) -> None:
    import datetime as dt

    (tmp_path / "settings.toml").write_text('PHONE_PIPELINE_CONTROLLER = "Example \\"Ltd\\""\n')
    assert record_first_day(tmp_path, dt.date(2026, 11, 30)) == dt.date(2026, 11, 30)
    assert record_first_day(tmp_path, dt.date(2026, 12, 2)) == dt.date(2026, 11, 30)
    assert record_first_day(tmp_path, dt.date(2026, 11, 1)) == dt.date(2026, 11, 1)
    loaded = load_settings(_home_env(tmp_path))
    assert loaded.partitions_start_date == "2026-11-01"
    assert loaded.controller == 'Example "Ltd"'
    assert not list(tmp_path.glob("*.part"))
