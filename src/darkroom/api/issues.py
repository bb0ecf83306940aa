"""Code 3's `issues` in the form the hosted service sends them: zod's (spec "Errors").

The hosted service validates requests with zod, and its clients read zod's fields: `code`
(`invalid_type`, `too_small`, `too_big`, `invalid_enum_value`, `custom`), `path`, `message` in
zod's own words, and the fields of each code (`expected` and `received` for a wrong type,
`minimum`/`maximum` for a length). One client sends `{}` to create and reads the model ids from
`issues[].expected`, so a field with a fixed set of values (`model`, `ar`) carries `expected` as
zod joins them (`'a' | 'b'`) and `options` as a list, whether it is missing, of a wrong type or
unknown (tests/e2e/test_errors.py).

Pydantic checks the types; `from_pydantic` turns its errors into these issues.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from darkroom.errors import InvalidRequest

Issue = dict[str, Any]
Path = list[str | int]

# zod's name for the type each of pydantic's type errors expected.
_EXPECTED_TYPES = {
    "string_type": "string",
    "int_type": "number",
    "float_type": "number",
    "bool_type": "boolean",
    "list_type": "array",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
}


def joined(options: Sequence[str]) -> str:
    """A fixed set of values as zod words it: each in single quotes, joined by ` | `."""
    return " | ".join(f"'{option}'" for option in options)


def json_type(value: Any) -> str:
    """zod's name for the type of a JSON value (its `received`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def required(path: Path, expected: str, options: Sequence[str] | None = None) -> Issue:
    """A missing field, as zod words it: `invalid_type`, received `undefined`, "Required"."""
    return _with_options(
        {
            "code": "invalid_type",
            "expected": expected,
            "received": "undefined",
            "path": path,
            "message": "Required",
        },
        options,
    )


def wrong_type(
    path: Path, expected: str, value: Any, options: Sequence[str] | None = None
) -> Issue:
    """A value of another type than the field's (`expected` is zod's type name, or the joined
    values of a fixed set)."""
    received = json_type(value)
    if expected == "integer" and received == "number":
        received = "float"  # zod's words for a number that is not whole
    return _with_options(
        {
            "code": "invalid_type",
            "expected": expected,
            "received": received,
            "path": path,
            "message": f"Expected {expected}, received {received}",
        },
        options,
    )


def unknown_value(path: Path, options: Sequence[str], value: str) -> Issue:
    """A value outside a fixed set: zod's `invalid_enum_value`, with `expected` beside it. The
    value is echoed as zod does, with half of a surrogate pair (valid JSON, but no UTF-8 to send
    back) escaped."""
    value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return {
        "code": "invalid_enum_value",
        "received": value,
        "options": list(options),
        "expected": joined(options),
        "path": path,
        "message": f"Invalid enum value. Expected {joined(options)}, received '{value}'",
    }


def too_small(path: Path, kind: str, minimum: int) -> Issue:
    """A string or array shorter, or a number smaller, than allowed (`kind` is zod's type)."""
    return _bound("too_small", path, kind, minimum)


def too_big(path: Path, kind: str, maximum: int) -> Issue:
    """A string or array longer, or a number larger, than allowed."""
    return _bound("too_big", path, kind, maximum)


def custom(path: Path, message: str) -> Issue:
    """Any other problem, in Darkroom's words: zod's `custom`."""
    return {"code": "custom", "path": path, "message": message}


def invalid(issues: list[Issue]) -> InvalidRequest:
    """Code 3 for these problems; the message goes on with them, field by field."""
    summary = "; ".join(_summary(issue) for issue in issues)
    return InvalidRequest(summary, issues=issues)


def from_pydantic(
    errors: Iterable[Mapping[str, Any]],
    types: Mapping[str, str],
    options: Mapping[str, Sequence[str]],
) -> list[Issue]:
    """Pydantic's errors as zod's issues. `types` gives each field's zod type (for a missing
    one); `options`, the values of the fields with a fixed set, where they are known."""
    return [_from_error(error, types, options) for error in errors]


def _from_error(
    error: Mapping[str, Any], types: Mapping[str, str], options: Mapping[str, Sequence[str]]
) -> Issue:
    path: Path = [p for p in error["loc"] if p not in ("body", "query")]
    kind = error["type"]
    field = str(path[0]) if len(path) == 1 else ""
    choices = options.get(field)
    expected = joined(choices) if choices else None
    if kind == "missing":
        return required(path, expected or types.get(field, "string"), choices)
    if kind in _EXPECTED_TYPES:
        named = "integer" if kind == "int_type" and _is_fraction(error) else _EXPECTED_TYPES[kind]
        return wrong_type(path, expected or named, error.get("input"), choices)
    return _bounded(path, kind, error.get("ctx") or {}) or custom(path, error["msg"])


def _is_fraction(error: Mapping[str, Any]) -> bool:
    value = error.get("input")
    return isinstance(value, float) and not value.is_integer()


# Pydantic's bound errors: (zod's code, zod's type, the context key that holds the bound).
_BOUNDS = {
    "greater_than_equal": ("too_small", "number", "ge"),
    "less_than_equal": ("too_big", "number", "le"),
    "string_too_short": ("too_small", "string", "min_length"),
    "string_too_long": ("too_big", "string", "max_length"),
    "too_short": ("too_small", "array", "min_length"),
    "too_long": ("too_big", "array", "max_length"),
}


def _bounded(path: Path, kind: str, ctx: Mapping[str, Any]) -> Issue | None:
    if kind not in _BOUNDS:
        return None
    code, zod_type, bound = _BOUNDS[kind]
    return _bound(code, path, zod_type, ctx[bound])


# zod's words for a bound, by type: (at least, at most).
_BOUND_WORDS = {
    "string": (
        "String must contain at least {} character(s)",
        "String must contain at most {} character(s)",
    ),
    "array": (
        "Array must contain at least {} element(s)",
        "Array must contain at most {} element(s)",
    ),
    "number": (
        "Number must be greater than or equal to {}",
        "Number must be less than or equal to {}",
    ),
}


def _bound(code: str, path: Path, kind: str, limit: int) -> Issue:
    smallest = code == "too_small"
    words = _BOUND_WORDS[kind][0 if smallest else 1]
    return {
        "code": code,
        "minimum" if smallest else "maximum": limit,
        "type": kind,
        "inclusive": True,
        "exact": False,
        "path": path,
        "message": words.format(limit),
    }


def _with_options(issue: Issue, options: Sequence[str] | None) -> Issue:
    return {**issue, "options": list(options)} if options else issue


def _summary(issue: Issue) -> str:
    where = ".".join(map(str, issue["path"]))
    return f"{where}: {issue['message']}" if where else issue["message"]
