"""Typed, frozen configs parsed from params.yaml sections, with errors that name the key."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import UserError

C = TypeVar("C", bound=BaseModel)


class Config(BaseModel):
    """Base of every params section: unknown keys rejected, strict types (ints accepted for floats), frozen,
    and every float finite (``.inf`` / ``.nan`` are bad params everywhere)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def section(params: dict[str, Any], key: str) -> dict[str, Any]:
    """The sub-dictionary at a dotted key ("particles.train"); a missing section is an error naming it."""
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            source = getattr(params, "source", "params.yaml")  # common.params.Params knows its file
            raise UserError(f"{source} has no section '{key}'")
        node = node[part]
    if node is None:
        return {}
    if not isinstance(node, dict):
        raise UserError(f"{key} must be a mapping, got {type(node).__name__}")
    return node


def _describe(error: dict[str, Any], key: str) -> str:
    loc = ".".join([key, *(str(p) for p in error["loc"])]) if error["loc"] else key
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"{loc} is not a known key"
    if kind == "missing":
        return f"{loc} is required"
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"{loc} must be {bounds[kind]} {limit}, got {value!r}"
    if kind == "value_error":  # raised by a field validator (e.g. an optimizer spec); its text names the key
        text = str(ctx.get("error", error["msg"]))
        return f"{loc}{text}" if text.startswith(".") else f"{loc}: {text}"
    if kind == "literal_error":
        return f"{loc} must be one of {ctx.get('expected')}, got {value!r}"
    if kind == "finite_number":
        return f"{loc} must be a finite number, got {value!r}"
    return f"{loc}: {error['msg'].lower()}, got {value!r}"


def validation_message(exc: ValidationError, key: str) -> str:
    """One line naming the first offending key, e.g. 'particles.train.epochs must be >= 1, got 0'."""
    return _describe(exc.errors()[0], key)


def parse_config(model: type[C], params: dict[str, Any], key: str) -> C:
    """Validate the section at ``key`` of ``params`` against ``model``; raise UserError naming the bad key."""
    return validate(model, section(params, key), key)


def validate(model: type[C], data: Any, key: str) -> C:
    """Validate an already extracted mapping; ``key`` is used in the error message."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UserError(validation_message(exc, key)) from None
