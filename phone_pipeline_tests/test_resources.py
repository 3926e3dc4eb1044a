"""Config resources are filled from the settings (build_resources); their own defaults, used when
a test or the launchpad builds one directly, must say the same as the settings' defaults."""

from __future__ import annotations

import ast
import dataclasses
import os
import typing
from pathlib import Path

import pytest

from phone_pipeline import resources
from phone_pipeline.domain.privacy import ContributionBounds, PrivacySettings
from phone_pipeline.domain.retention import (
    AGGREGATES,
    PSEUDONYMIZED,
    RESTRICTED,
    RETENTION_SETTINGS,
    RetentionPolicy,
)
from phone_pipeline.domain.risk import RiskLimits
from phone_pipeline.resources import (
    ContactRules,
    PipelineConfig,
    PseudonymKeyResource,
    pseudonym_key_resource,
)
from phone_pipeline.settings import (
    CONTACT_RULES,
    PIPELINE_CONFIG,
    PSEUDONYM_KEY,
    SETTING,
    SETTINGS,
    load_settings,
)


@pytest.mark.parametrize("resource", [PipelineConfig, ContactRules])
def test_resource_defaults_equal_the_settings_defaults(
    resource: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in os.environ:
        if name.startswith("PHONE_PIPELINE_"):
            monkeypatch.delenv(name)
    settings = load_settings()
    # risk_k: no setting (None) means "use min_cell_size", which the resource spells 0.
    unset = {"risk_k": (None, 0)}
    differing = {
        name: (field.default, getattr(settings, name))
        for name, field in resource.model_fields.items()
        if not field.is_required()
        and getattr(settings, name) != field.default
        and unset.get(name) != (getattr(settings, name), field.default)
    }
    assert differing == {}


RESOURCES = {PIPELINE_CONFIG: PipelineConfig, CONTACT_RULES: ContactRules, PSEUDONYM_KEY: PseudonymKeyResource}  # fmt: skip


@pytest.mark.parametrize("consumer", sorted(RESOURCES))
def test_each_resource_holds_exactly_the_settings_declared_for_it(consumer: str) -> None:
    resource = RESOURCES[consumer]
    declared = {setting.name for setting in SETTINGS if setting.consumer == consumer}
    assert declared <= set(resource.model_fields)
    hints = typing.get_type_hints(resource)
    for name in declared:
        field = resource.model_fields[name]
        setting = SETTING[name]
        assert (hints[name], field.default) == (setting.type, setting.default), name
        assert setting.env in (field.description or ""), name


def _field_defaults(path: Path, classes: set[str]) -> dict[tuple[str, str], ast.expr]:
    """(class, field) -> the expression of its default, for the annotated fields of `classes`."""
    found = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef) and node.name in classes:
            for statement in node.body:
                if (
                    isinstance(statement, ast.AnnAssign)
                    and isinstance(statement.target, ast.Name)
                    and statement.value is not None
                ):
                    found[(node.name, statement.target.id)] = statement.value
    return found


def test_no_resource_repeats_a_declared_default_as_a_literal() -> None:
    """Each declared field's default is `_declared("<its name>")`, never a constant that merely
    equals the declaration today."""
    path = Path(resources.__file__)
    defaults = _field_defaults(path, {resource.__name__ for resource in RESOURCES.values()})
    declared = {
        (RESOURCES[s.consumer].__name__, s.name) for s in SETTINGS if s.consumer in RESOURCES
    }
    assert declared <= set(defaults)
    repeated = {
        field: ast.unparse(value)
        for field, value in defaults.items()
        if field in declared and ast.unparse(value) != f"_declared({field[1]!r})"
    }
    assert repeated == {}


def test_domain_rules_take_their_parameters_without_defaults() -> None:
    """The deployment's values come from the settings; a domain default would be a second copy."""
    for rule in (RetentionPolicy, RiskLimits, ContributionBounds, PrivacySettings):
        with_default = [
            field.name
            for field in dataclasses.fields(rule)
            if field.default is not dataclasses.MISSING
            or field.default_factory is not dataclasses.MISSING
        ]
        assert with_default == [], rule.__name__
    assert dict(RETENTION_SETTINGS) == {
        RESTRICTED: SETTING["retention_restricted_days"].env,
        PSEUDONYMIZED: SETTING["retention_pseudonymized_days"].env,
        AGGREGATES: SETTING["retention_aggregates_days"].env,
    }


def test_the_key_resource_reads_the_declared_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("PHONE_PIPELINE_"):
            monkeypatch.delenv(name)
    for name in ("key", "versioned_keys", "key_version", "primary_version"):
        monkeypatch.setenv(SETTING[name].env, "2" if "version" in name else "x")
    built = pseudonym_key_resource(load_settings())
    env_vars = {
        name: value.env_var_name if hasattr(value, "env_var_name") else value
        for name, value in built.__dict__.items()
        if name in {"key", "versioned_keys", "key_version", "primary_version"}
    }
    assert env_vars == {
        name: SETTING[name].env
        for name in ("key", "versioned_keys", "key_version", "primary_version")
    }
