"""Themes are data: built-ins load and validate, user themes add to them, bad files give one notice,
and the choice persists in the user config without disturbing other keys."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from workbench import paths
from workbench.config import Settings, load_settings
from workbench.tui import themes, user_config

from .conftest import SIZE, aio, settle

SAMPLES = Path(__file__).parent / "sample-themes"


def test_builtin_themes_load_and_validate():
    found = themes.load_folder(themes.builtin_themes_dir())
    assert found.errors == ()
    assert set(themes.BUILTIN_NAMES) <= set(found.themes)
    assert found.themes["workbench-light"].dark is False


@pytest.mark.parametrize("data, message", [
    ({"name": "x", "dark": True, "colors": {"primary": "#12345"}}, "not a colour"),
    ({"name": "X Y", "dark": True, "colors": {"primary": "#123456"}}, "'name'"),
    ({"name": "x", "dark": "yes", "colors": {"primary": "#123456"}}, "'dark'"),
    ({"name": "x", "dark": True, "colors": {}}, "primary"),
    ({"name": "x", "dark": True, "colors": {"primary": "#123456", "glow": "#fff"}}, "glow"),
    ({"name": "x", "dark": True, "colors": {"primary": "#123456"}, "extra": 1}, "extra"),
    ({"name": "x", "dark": True, "colors": {"primary": "#123456"}, "variables": {"border": 3}}, "colour"),
])
def test_invalid_theme_data_is_rejected_with_the_reason(data, message):
    with pytest.raises(themes.ThemeError, match=message):
        themes.theme_from_data(data, "t.toml")


def test_user_folder_reports_every_bad_file():
    found = themes.load_folder(SAMPLES)
    assert list(found.themes) == ["ocean"]
    assert len(found.errors) == 2
    assert any("broken-colour.toml" in e and "not a colour" in e for e in found.errors)
    assert any("not-toml.toml" in e and "TOML" in e for e in found.errors)


def test_set_key_keeps_other_keys_and_comments():
    text = '# mine\n[model]\npath = "/m.gguf"\n\n[ui]\n# colours\ntheme = "old"\n\n[sandbox]\nmemory = "4g"\n'
    new = user_config.set_key(text, "ui", "theme", "workbench-light")
    assert "# mine" in new and "# colours" in new
    data = tomllib.loads(new)
    assert data == {"model": {"path": "/m.gguf"}, "ui": {"theme": "workbench-light"}, "sandbox": {"memory": "4g"}}
    assert tomllib.loads(user_config.set_key("[model]\npath = 'x'\n", "ui", "theme", "t"))["ui"] == {"theme": "t"}
    assert tomllib.loads(user_config.set_key("", "ui", "theme", 'we"ird'))["ui"]["theme"] == 'we"ird'
    assert tomllib.loads(user_config.set_key("[ui]\n", "ui", "theme", "t"))["ui"] == {"theme": "t"}


@aio
async def test_switching_theme_persists_in_user_config(make):
    config = paths.user_config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[sandbox]\nmemory = "4g"\n', encoding="utf-8")
    app = make(persist_theme=True)
    async with app.run_test(size=SIZE) as pilot:
        for name in ("workbench-high-contrast", "workbench-dark", "workbench-light"):
            app.theme = name
            await settle(pilot, lambda name=name: tomllib.loads(config.read_text()).get("ui", {}).get("theme")
                         == name)
    assert tomllib.loads(config.read_text()) == {"sandbox": {"memory": "4g"}, "ui": {"theme": "workbench-light"}}
    assert load_settings(None).ui.theme == "workbench-light"  # the next start picks it up


@aio
async def test_invalid_user_theme_gives_one_notice_and_falls_back(make, tmp_path):
    user = tmp_path / "themes"
    shutil.copytree(SAMPLES, user)
    app = make(user_themes=user, settings=Settings(ui={"theme": "broken-colour"}))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        assert app.theme == themes.DEFAULT_THEME
        notices = [n for n in app._notifications if n.title == "Invalid theme files"]
        assert len(notices) == 1
        assert "broken-colour.toml" in notices[0].message and "not-toml.toml" in notices[0].message
        assert "ocean" in app.available_themes


@aio
async def test_valid_user_theme_is_used(make, tmp_path):
    user = tmp_path / "themes"
    user.mkdir()
    shutil.copy(SAMPLES / "ocean.toml", user)
    app = make(user_themes=user, settings=Settings(ui={"theme": "ocean"}))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.05)
        assert app.theme == "ocean"
        assert not [n for n in app._notifications if n.title == "Invalid theme files"]
