"""Where Workbench keeps its files on the user's machine (all from platformdirs, in one place).

Nothing here creates a folder at import time; `ensure_dir` creates one on first use with mode 0o700,
because these folders may hold keys and logs.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "workbench"


def _override(env: str) -> Path | None:
    value = os.environ.get(env)
    return Path(value).expanduser() if value else None


def user_config_dir() -> Path:
    return _override("WORKBENCH_CONFIG_DIR") or Path(platformdirs.user_config_dir(APP_NAME))


def user_data_dir() -> Path:
    return _override("WORKBENCH_DATA_DIR") or Path(platformdirs.user_data_dir(APP_NAME))


def user_cache_dir() -> Path:
    return _override("WORKBENCH_CACHE_DIR") or Path(platformdirs.user_cache_dir(APP_NAME))


def user_config_file() -> Path:
    return user_config_dir() / "config.toml"


def user_themes_dir() -> Path:
    return user_config_dir() / "themes"


def ensure_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
