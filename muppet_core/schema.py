"""The base of every configuration model, the marks that keep a setting out of content keys, and
error lines that name the YAML path of the offending field.

Every setting of a config model is part of the content keys of the stages that read it, unless its
field is marked ``execution`` (it only shapes how the work runs: concurrency, launcher, checkpoint
cadence) or ``plan`` (it decides which runs a stage makes; each run's own value, such as its seed
or benchmark, is in that run's key). A setting added without a mark is therefore in every key: a
forgotten mark means a recompute, never a stale result.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticUndefined

from muppet_core.registry import did_you_mean

KEY_ROLE = "key_role"
EXECUTION = "execution"
PLAN = "plan"


def execution(default: Any = ..., **kwargs: Any) -> Any:
    """A ``Field`` that only shapes execution: left out of content keys."""
    return Field(default, json_schema_extra={KEY_ROLE: EXECUTION}, **kwargs)


def plan(default: Any = ..., **kwargs: Any) -> Any:
    """A ``Field`` that decides which runs a stage makes: left out of content keys (each run's own
    value is in its key)."""
    return Field(default, json_schema_extra={KEY_ROLE: PLAN}, **kwargs)


def key_role(model: type[BaseModel], name: str) -> str | None:
    """``execution``, ``plan``, or None for a setting that is part of the content key."""
    extra = model.model_fields[name].json_schema_extra
    return extra.get(KEY_ROLE) if isinstance(extra, dict) else None


def result_settings(config: BaseModel) -> dict[str, Any]:
    """The settings of ``config`` that decide a stage's result: every field but those marked
    ``execution`` or ``plan``, nested models included."""
    cls = type(config)
    out = config.model_dump(exclude={name for name in cls.model_fields if key_role(cls, name)})
    for name in out:
        value = getattr(config, name)
        if isinstance(value, BaseModel):
            out[name] = result_settings(value)
    return out


def _numeric(annotation: Any) -> bool:
    """Whether a field holds numbers (int, float, constrained or Literal numbers, lists of them) and never a bool."""
    if annotation in (int, float):
        return True
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Literal:
        return all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
    return bool not in args and any(_numeric(a) for a in args)


class Strict(BaseModel):
    """Base for every config model: unknown keys are errors, values are immutable, numbers are
    finite, and YAML's true/false (also yes/no/on/off) are never read as the numbers 1 and 0."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_as_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, bool) for v in values) and _numeric(cls.model_fields[info.field_name].annotation):
            raise ValueError("Input should be a number, not true/false")
        return value


def yaml_path(loc: tuple[Any, ...]) -> str:
    """Render a pydantic error location as a YAML path: ``pipelines.demo.finetune.seeds[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def _model_class(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config model that owns the field at ``loc`` under ``root`` (to suggest known keys);
    mappings of name -> model (``pipelines: {demo: ...}``) are followed through their keys."""
    model: Any = root
    for part in loc[:-1]:
        if model is None:
            return None
        if isinstance(model, tuple):  # inside a mapping: this part is a key, the value is the model
            model = model[1]
            continue
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        if typing.get_origin(annotation) is dict:
            model = ("mapping", _model_class(typing.get_args(annotation)[1]))
            continue
        model = _model_class(annotation)
    return model if _model_class(model) else None


def members(model: type[BaseModel]) -> list[type[BaseModel]]:
    """The registered members of a model that is the base of a registry's settings (a ``members()``
    classmethod lists them: the ``tracking:`` kinds), else none."""
    listed = getattr(model, "members", None)
    return list(listed()) if callable(listed) else []


def known_keys(model: type[BaseModel]) -> list[str]:
    """The keys a model accepts, its members' included (to suggest one for a misspelt key)."""
    return list(dict.fromkeys([*model.model_fields, *(name for m in members(model) for name in m.model_fields)]))


def describe_error(root: type[BaseModel], error: dict[str, Any]) -> str:
    """One line for a pydantic error: the YAML path, then what is wrong (with did-you-mean for an unknown key)."""
    loc = tuple(error["loc"])
    path = yaml_path(loc)
    if error["type"] == "extra_forbidden":
        model = model_at(root, loc)
        hint = did_you_mean(str(loc[-1]), known_keys(model)) if model else ""
        return f"{path}: unknown key{hint}"
    if error["type"] == "missing":
        return f"{path}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    return f"{path}: {message}" if isinstance(value, (dict, list)) else f"{path}: {message} (got {value!r})"


def describe_errors(root: type[BaseModel], errors: list[dict[str, Any]]) -> list[str]:
    """One line per problem; a missing key explained by a misspelling beside it is not repeated."""
    misspelled = set()
    for e in errors:
        if e["type"] == "extra_forbidden":
            model = model_at(root, tuple(e["loc"]))
            close = difflib.get_close_matches(str(e["loc"][-1]), known_keys(model) if model else [], n=1, cutoff=0.6)
            misspelled.update((tuple(e["loc"][:-1]), c) for c in close)
    return [
        describe_error(root, e)
        for e in errors
        if not (e["type"] == "missing" and (tuple(e["loc"][:-1]), e["loc"][-1]) in misspelled)
    ]


def _type_text(annotation: Any) -> str:
    """A field's type as the reference shows it: ``int``, ``list[str]``, ``'auto' | 'thread'``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_text(a) for a in args)
    if origin is typing.Annotated:
        return _type_text(args[0])
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(_type_text(a) for a in args)}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _default_text(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    return "null" if value is None else repr(value) if not isinstance(value, str) else (f"'{value}'" if value else "''")


def reference_rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str, str]]:
    """(setting, type, default, key role, meaning) of every setting of ``model``, nested models
    expanded (a mapping of name -> model as ``<name>``), in declaration order. The meaning is the
    field's docstring; the key role says whether the setting is part of content keys (``key``) or
    marked ``execution`` or ``plan``. Settings of a model marked as a whole share its mark."""
    rows = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        role = key_role(model, name) or "key"
        annotation = field.annotation
        if typing.get_origin(annotation) is dict and _model_class(typing.get_args(annotation)[1]):
            rows += reference_rows(typing.get_args(annotation)[1], f"{path}.<name>.")
            continue
        if sub := _model_class(annotation):
            nested = reference_rows(sub, f"{path}.")
            for member in members(sub):  # each member's own settings, after those they share
                kind = member.model_fields["kind"].default
                nested += [(p, t, d, r, f"({kind}) {m}") for p, t, d, r, m in reference_rows(member, f"{path}.") if p not in {n[0] for n in nested}]
            rows += [(p, t, d, role if role != "key" else r, m) for p, t, d, r, m in nested]
            continue
        meaning = " ".join((field.description or "").split())
        rows.append((path, _type_text(annotation), _default_text(field), role, meaning))
    return rows


def reference_table(rows: list[tuple[str, str, str, str, str]]) -> str:
    """``reference_rows`` as a Markdown table."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| setting | type | default | in keys | meaning |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| `{p}` | `{cell(t)}` | `{cell(d)}` | {r} | {cell(m)} |" for p, t, d, r, m in rows]
    return "\n".join(lines) + "\n"
