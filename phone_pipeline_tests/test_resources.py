"""Config resources are filled from the settings (build_resources); their own defaults, used when
a test or the launchpad builds one directly, must say the same as the settings' defaults."""

from __future__ import annotations

import os

import pytest

from phone_pipeline.resources import ContactRules, PipelineConfig
from phone_pipeline.settings import load_settings


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
