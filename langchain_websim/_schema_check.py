"""A small JSON-schema checker for tool-call arguments.

Tool schemas come from ``convert_to_openai_tool`` (pydantic models, functions, TypedDicts,
hand-written JSON schemas), so the checker covers what those produce: ``type`` (one or a
list), ``enum``, ``const``, ``properties``/``required``/``additionalProperties``, ``items``/
``prefixItems``, length, size and range bounds, ``pattern``, ``anyOf``/``oneOf``/``allOf`` and
local ``$ref``.  ``format`` is an annotation (as in JSON Schema 2020-12) and ``oneOf`` is
checked like ``anyOf``: pydantic emits ``oneOf`` for unions whose branches may overlap, and
the tool itself validates again.  Errors name the path of the offending value, so a model
that is told about them can correct its call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from langchain_websim._wire import json_type

__all__ = ["schema_errors"]

_MAX_ERRORS = 5
# Deeper than any argument structure a tool plausibly takes; bounds recursion through
# self-referencing ($ref) schemas.
_MAX_DEPTH = 64
_REPR_CHARS = 60


def schema_errors(value: Any, schema: Any, *, root: str = "arguments") -> list[str]:
    """Return why ``value`` does not satisfy ``schema`` (empty when it does).

    At most a handful of problems are reported, each as ``"<path>: <problem>"``.
    """
    errors: list[str] = []
    _Checker(schema, errors).check(value, schema, root, 0)
    return errors


def _has_type(value: Any, expected: str) -> bool:
    actual = json_type(value)
    if expected == "number":
        return actual in ("integer", "number")
    if expected == "integer":
        # JSON has one number type: 3.0 is an integer value.
        return actual == "integer" or (
            actual == "number" and math.isfinite(value) and float(value).is_integer()
        )
    return actual == expected


def _show(value: Any) -> str:
    try:
        text = repr(value)
    except RecursionError:
        return f"<{json_type(value)} nested too deeply to show>"
    return text if len(text) <= _REPR_CHARS else text[: _REPR_CHARS - 3] + "..."


class _Checker:
    def __init__(self, root_schema: Any, errors: list[str]) -> None:
        self._root = root_schema
        self.errors = errors

    def _fail(self, path: str, problem: str) -> None:
        if len(self.errors) < _MAX_ERRORS:
            self.errors.append(f"{path}: {problem}")

    def _full(self) -> bool:
        return len(self.errors) >= _MAX_ERRORS

    def _resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise LookupError(f"only local references are supported, got {ref!r}")
        node: Any = self._root
        for part in ref[1:].split("/"):
            if not part:
                continue
            key = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or key not in node:
                raise LookupError(f"reference {ref!r} does not resolve")
            node = node[key]
        return node

    def check(self, value: Any, schema: Any, path: str, depth: int) -> None:
        if self._full() or schema is True or schema is None:
            return
        if schema is False:
            self._fail(path, "no value is allowed here")
            return
        if not isinstance(schema, Mapping):
            return  # not a schema: nothing to hold the value to
        if depth > _MAX_DEPTH:
            self._fail(path, f"nested deeper than {_MAX_DEPTH} levels")
            return
        if "$ref" in schema and isinstance(schema["$ref"], str):
            try:
                target = self._resolve(schema["$ref"])
            except LookupError as exc:
                self._fail(path, str(exc))
                return
            self.check(value, target, path, depth + 1)
        if not self._check_type(value, schema, path):
            return
        self._check_values(value, schema, path)
        self._check_combinators(value, schema, path, depth)
        if isinstance(value, dict):
            self._check_object(value, schema, path, depth)
        elif isinstance(value, list):
            self._check_array(value, schema, path, depth)
        elif isinstance(value, str):
            self._check_string(value, schema, path)
        elif json_type(value) in ("integer", "number"):
            self._check_number(value, schema, path)

    def _check_type(self, value: Any, schema: Mapping[str, Any], path: str) -> bool:
        expected = schema.get("type")
        if expected is None:
            return True
        names = [expected] if isinstance(expected, str) else list(expected)
        if any(isinstance(name, str) and _has_type(value, name) for name in names):
            return True
        wanted = " or ".join(str(name) for name in names)
        self._fail(path, f"expected {wanted}, got {json_type(value)} {_show(value)}")
        return False

    def _check_values(self, value: Any, schema: Mapping[str, Any], path: str) -> None:
        if "const" in schema and not _json_equal(value, schema["const"]):
            self._fail(path, f"expected {_show(schema['const'])}, got {_show(value)}")
        options = schema.get("enum")
        if isinstance(options, list) and not any(_json_equal(value, o) for o in options):
            self._fail(path, f"{_show(value)} is not one of {_show(options)}")

    def _check_combinators(
        self, value: Any, schema: Mapping[str, Any], path: str, depth: int
    ) -> None:
        for branch in _schema_list(schema.get("allOf")):
            self.check(value, branch, path, depth + 1)
        for key in ("anyOf", "oneOf"):
            branches = _schema_list(schema.get(key))
            if not branches:
                continue
            reasons: list[str] = []
            for branch in branches:
                sub = _Checker(self._root, [])
                sub.check(value, branch, path, depth + 1)
                if not sub.errors:
                    break
                reasons.append(sub.errors[0])
            else:
                self._fail(path, "matches none of the allowed shapes (" + "; ".join(reasons) + ")")

    def _check_object(
        self, value: dict[Any, Any], schema: Mapping[str, Any], path: str, depth: int
    ) -> None:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        for name in _str_list(schema.get("required")):
            if name not in value:
                self._fail(path, f"missing required property {name!r}")
        extra_schema = schema.get("additionalProperties", True)
        for key, item in value.items():
            item_path = f"{path}.{key}"
            if key in properties:
                self.check(item, properties[key], item_path, depth + 1)
            elif extra_schema is False:
                allowed = ", ".join(repr(str(k)) for k in properties) or "none"
                self._fail(path, f"unexpected property {key!r} (allowed: {allowed})")
            else:
                self.check(item, extra_schema, item_path, depth + 1)
        self._check_size(len(value), schema, path, "minProperties", "maxProperties", "properties")

    def _check_array(
        self, value: list[Any], schema: Mapping[str, Any], path: str, depth: int
    ) -> None:
        prefix = _schema_list(schema.get("prefixItems"))
        for index, item in enumerate(value):
            item_schema = prefix[index] if index < len(prefix) else schema.get("items", True)
            self.check(item, item_schema, f"{path}[{index}]", depth + 1)
        self._check_size(len(value), schema, path, "minItems", "maxItems", "items")

    def _check_string(self, value: str, schema: Mapping[str, Any], path: str) -> None:
        self._check_size(len(value), schema, path, "minLength", "maxLength", "characters")
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                matched = re.search(pattern, value) is not None
            except re.error as exc:
                self._fail(path, f"the schema's pattern {pattern!r} is invalid ({exc})")
                return
            if not matched:
                self._fail(path, f"{_show(value)} does not match the pattern {pattern!r}")

    def _check_number(self, value: float, schema: Mapping[str, Any], path: str) -> None:
        low, high = _number(schema, "minimum"), _number(schema, "maximum")
        if low is not None and value < low:
            self._fail(path, f"{_show(value)} is less than the minimum {low}")
        if high is not None and value > high:
            self._fail(path, f"{_show(value)} is greater than the maximum {high}")
        low, high = _number(schema, "exclusiveMinimum"), _number(schema, "exclusiveMaximum")
        if low is not None and value <= low:
            self._fail(path, f"{_show(value)} is not greater than {low}")
        if high is not None and value >= high:
            self._fail(path, f"{_show(value)} is not less than {high}")
        step = _number(schema, "multipleOf")
        if step is not None and step > 0:
            ratio = value / step
            # Tolerance for binary floats: 0.3 is a multiple of 0.1.
            tolerance = 1e-9 * max(1.0, abs(ratio))
            if not (math.isfinite(ratio) and abs(ratio - round(ratio)) <= tolerance):
                self._fail(path, f"{_show(value)} is not a multiple of {step}")

    def _check_size(
        self,
        size: int,
        schema: Mapping[str, Any],
        path: str,
        low_key: str,
        high_key: str,
        unit: str,
    ) -> None:
        low, high = _number(schema, low_key), _number(schema, high_key)
        if low is not None and size < low:
            self._fail(path, f"has {size} {unit}, fewer than the minimum {low}")
        if high is not None and size > high:
            self._fail(path, f"has {size} {unit}, more than the maximum {high}")


def _number(schema: Mapping[str, Any], key: str) -> float | None:
    bound = schema.get(key)
    return bound if json_type(bound) in ("integer", "number") else None


def _schema_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _str_list(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _json_equal(left: Any, right: Any) -> bool:
    # JSON equality: true is not 1, 1 equals 1.0.
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_json_equal(left[k], right[k]) for k in left)
    return bool(left == right)
