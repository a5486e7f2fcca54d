"""Loading params.yaml and applying profiles (profiles/<name>.yaml overrides)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError

PARAMS_FILE = "params.yaml"
PROFILES_DIR = "profiles"


def load_yaml(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping at the top level")
    return data


def load_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """The whole params file as a dict."""
    return load_yaml(Path(path))


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``override`` merged in; nested mappings merge, everything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def available_profiles(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / PROFILES_DIR).glob("*.yaml"))


def apply_profile(root: Path, name: str) -> Path:
    """Overlay profiles/<name>.yaml onto params.yaml (in place, atomically) and return the params path."""
    from .artifacts import atomic_path

    profile_path = root / PROFILES_DIR / f"{name}.yaml"
    if not profile_path.is_file():
        known = ", ".join(available_profiles(root)) or "none"
        raise UserError(f"unknown profile '{name}' (known: {known})")
    params_path = root / PARAMS_FILE
    merged = deep_merge(load_params(params_path), load_yaml(profile_path))
    header = (
        f"# phys-ml parameters with the '{name}' profile applied (profiles/{name}.yaml over the defaults).\n"
        "# `git checkout params.yaml` returns to the committed defaults.\n"
    )
    with atomic_path(params_path) as tmp:
        tmp.write_text(header + yaml.safe_dump(merged, sort_keys=False, default_flow_style=False))
    return params_path
