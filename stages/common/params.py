"""Loading params.yaml and applying profiles (profiles/<name>.yaml overrides)."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError

PARAMS_FILE = "params.yaml"
PROFILES_DIR = "profiles"
HEADER_MARK = "# phys-ml parameters with the"  # the first line `profile apply` writes


def load_yaml(path: Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a YAML file")
    if not path.is_file():
        raise UserError(f"{path} not found")
    try:
        data = yaml.safe_load(path.read_text())
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text (UTF-8) YAML file") from None
    except OSError as exc:
        raise UserError(f"{path} cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping at the top level")
    return data


class Params(dict):
    """The params mapping, remembering the file it came from (so errors can name that file)."""

    source = PARAMS_FILE

    def __init__(self, data: dict[str, Any] | None = None, source: str | Path = PARAMS_FILE) -> None:
        super().__init__(data or {})
        self.source = str(source)


yaml.SafeDumper.add_representer(Params, yaml.representer.SafeRepresenter.represent_dict)  # dumps as a mapping


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """The whole params file as a dict."""
    return Params(load_yaml(Path(path)), source=path)


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


def apply_profile(root: Path, name: str, validate: Callable[[dict], None] | None = None) -> Path:
    """Overlay profiles/<name>.yaml onto params.yaml (in place, atomically) and return the params path.

    A round-trip YAML parser keeps the comments of params.yaml; the profile's values replace the defaults.
    ``validate`` (the CLI passes `registry.validate_params`) checks the merged params before anything is
    written, so a profile never leaves a params file that the stages would reject.
    """
    from .artifacts import atomic_path

    profile_path = root / PROFILES_DIR / f"{name}.yaml"
    if not profile_path.is_file():
        known = ", ".join(available_profiles(root)) or "none"
        raise UserError(f"unknown profile '{name}' (known: {known})")
    params_path = root / PARAMS_FILE
    load_params(params_path)  # the same checks (and errors) as a stage's
    profile = load_yaml(profile_path)
    if validate is not None:
        validate(Params(deep_merge(load_params(params_path), profile), source=f"{params_path} + {profile_path}"))
    document = _round_trip().load(params_path.read_text()) or {}
    _merge_into(document, profile)
    header = (f"{HEADER_MARK} '{name}' profile applied (profiles/{name}.yaml over the defaults).\n"
              "# `git checkout params.yaml` returns to the committed defaults.\n")
    buffer = io.StringIO()
    _round_trip().dump(document, buffer)
    body = "".join(line for line in buffer.getvalue().splitlines(keepends=True)
                   if not line.startswith(HEADER_MARK) and line != header.splitlines(keepends=True)[1])
    with atomic_path(params_path) as tmp:
        tmp.write_text(header + body)
    return params_path


def _round_trip():
    from ruamel.yaml import YAML

    yaml_rt = YAML()  # round-trip mode: comments and key order survive
    yaml_rt.width = 120
    yaml_rt.indent(mapping=2, sequence=4, offset=2)
    yaml_rt.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    yaml_rt.representer.add_representer(float, _represent_float)
    return yaml_rt


def _represent_float(rep, value: float):
    """Floats that PyYAML (YAML 1.1, used to read params) reads back as floats: 3e-05 -> 3.0e-05."""
    text = repr(value)
    if text in ("inf", "-inf", "nan"):
        text = {"inf": ".inf", "-inf": "-.inf", "nan": ".nan"}[text]
    elif "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return rep.represent_scalar("tag:yaml.org,2002:float", text)


def _merge_into(document: Any, override: dict[str, Any]) -> None:
    """``deep_merge`` in place on a round-trip document, so the comments beside untouched keys stay."""
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(document.get(key), dict):
            _merge_into(document[key], value)
        else:
            document[key] = _flow_lists(copy.deepcopy(value))


def _flow_lists(value: Any) -> Any:
    """Lists written as ``[a, b]``, like the ones they replace."""
    from ruamel.yaml.comments import CommentedSeq

    if isinstance(value, list):
        seq = CommentedSeq(_flow_lists(v) for v in value)
        seq.fa.set_flow_style()
        return seq
    if isinstance(value, dict):
        return {k: _flow_lists(v) for k, v in value.items()}
    return value
