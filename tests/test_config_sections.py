"""Every [section] of settings in ccub.toml reaches the config (none is silently ignored)."""

from __future__ import annotations

import dataclasses
import re

import pytest
import tomli_w

from ccub.config import Config, ConfigError, load_config

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


def wrong_type(value):
    """A TOML value of another type than `value`'s (an integer is a valid float)."""
    if isinstance(value, str):
        return 3
    if isinstance(value, list):
        return [{"a": 1}]
    return "big"


@pytest.mark.parametrize("section", SECTIONS)
def test_every_setting_of_the_wrong_type_is_named_with_its_file_section_and_expected_type(section, tmp_path):
    settings = getattr(Config(), section)
    for f in dataclasses.fields(settings):
        bad = wrong_type(getattr(settings, f.name))
        (tmp_path / "ccub.toml").write_text(f"[{section}]\n" + tomli_w.dumps({f.name: bad}))
        with pytest.raises(ConfigError) as caught:
            load_config(cwd=tmp_path)
        message = str(caught.value)
        assert message.startswith(f"{tmp_path / 'ccub.toml'} [{section}]: {f.name} = {bad!r}"), message
        assert "expected " in message


@pytest.mark.parametrize(("toml", "expected"), [
    ("[geometry]\nmin_short_side_error = true\n", "min_short_side_error = True (bool); expected an integer"),
    ("[geometry]\nmax_aspect_error = 'wide'\n", "max_aspect_error = 'wide' (str); expected a number"),
    ("[fetch]\nallow_private = 1\n", "allow_private = 1 (int); expected true or false"),
    ("[captions]\npeople_words = ['man', 2]\n", "people_words = ['man', 2] (list); expected list[str]"),
    ("geometry = 3\n", "[geometry] = 3 (int); expected a table"),
    ("disable = 'geometry.too_small'\n", "disable = 'geometry.too_small' (str); expected list[str]"),
    ("[severity]\n'geometry.too_small' = 1\n", "expected dict[str, str]"),
    ("[cultures]\nkorea = 'KR'\n", "[cultures.korea] = 'KR'; expected a table"),
])
def test_type_errors_say_what_was_expected(toml, expected, tmp_path):
    (tmp_path / "ccub.toml").write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(cwd=tmp_path)


def test_integers_are_read_as_floats_and_floats_are_not_integers(tmp_path):
    (tmp_path / "ccub.toml").write_text("[geometry]\nmax_aspect_error = 5\n")
    value = load_config(cwd=tmp_path).geometry.max_aspect_error
    assert value == 5.0 and isinstance(value, float)
    (tmp_path / "ccub.toml").write_text("[geometry]\nmin_short_side_error = 300.5\n")
    with pytest.raises(ConfigError, match="expected an integer"):
        load_config(cwd=tmp_path)


def test_each_family_of_checks_owns_the_sections_of_its_thresholds():
    """A section of check thresholds is defined beside the family that reads it, so adding a threshold
    touches that one module; the shared [limits] stays in ccub/config.py."""
    from ccub.checks.registry import families

    owners = {name: type(value).__module__ for name, value in vars(Config()).items() if dataclasses.is_dataclass(value)}
    for family in families():
        for spec in family.specs:
            for threshold in spec.thresholds:
                section = threshold.split(".")[0]
                assert owners[section].startswith("ccub.checks.") or section == "limits", (spec.id, threshold)
    check_modules = {type(f).__module__ for f in families()}
    owned = {s for s, m in owners.items() if m.startswith("ccub.checks.")}
    assert owned == {"geometry", "quality", "captions", "rights", "labels", "duplicates"}
    assert {owners[s] for s in owned} <= check_modules
    for section in owned:
        readers = {type(f).__module__ for f in families()
                   for spec in f.specs for t in spec.thresholds if t.startswith(section + ".")}
        assert owners[section] in readers, f"[{section}] is defined in {owners[section]}, but its checks are elsewhere"
