"""Every [section] of settings in ccub.toml reaches the config (none is silently ignored)."""

from __future__ import annotations

import dataclasses

import pytest
import tomli_w

from ccub.config import Config, load_config

SECTIONS = [name for name, value in vars(Config()).items() if dataclasses.is_dataclass(value)]


def test_every_section_is_listed():
    assert {"limits", "prepare", "benchmark", "fetch", "study"} <= set(SECTIONS)


def changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, list):
        return value[:1] if len(value) > 1 else [*value, value[0] if value else "x"]
    return value + "x"


@pytest.mark.parametrize("section", SECTIONS)
def test_a_changed_setting_is_read(section, tmp_path):
    settings = getattr(Config(), section)
    name = dataclasses.fields(settings)[0].name
    value = changed(getattr(settings, name))
    (tmp_path / "ccub.toml").write_text(f"[{section}]\n" + tomli_w.dumps({name: value}))
    assert getattr(getattr(load_config(cwd=tmp_path), section), name) == value
