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
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, ValidationInfo, ValidatorFunctionWrapHandler, field_validator
from pydantic_core import PydanticUndefined, core_schema

from muppet_core.registry import Registry, did_you_mean

KEY_ROLE = "key_role"
EXECUTION = "execution"
PLAN = "plan"

# Bounds that no sensible run passes: a value beyond them is a typo that would fail only after data and training.
MAX_SEED = 2**32 - 1
"""The largest seed (numpy's and most libraries' seeds are 32-bit; torch's overflow at 2**64)."""
MAX_STEPS = 10_000_000
"""The most optimizer updates (and update intervals) a setting may name."""
MAX_BATCH = 65_536
"""The most examples a batch or micro-batch may hold."""
MAX_WORKERS = 1024
"""The most threads, processes, nodes or fine-tunes at once a setting may ask for."""


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


def repeated(values: list[Any]) -> str | None:
    """Why a list of plain values (names, numbers) holds one twice, or None (lists of other things are not checked)."""
    first: dict[Any, int] = {}
    for i, value in enumerate(values):
        if not isinstance(value, (str, int, float)):
            return None
        if value in first:
            return f"{value!r} is listed twice ([{first[value]}] and [{i}]): list each entry once"
        first[value] = i
    return None


class Strict(BaseModel):
    """Base for every config model: unknown keys are errors, values are immutable, numbers are
    finite, YAML's true/false (also yes/no/on/off) are never read as the numbers 1 and 0, and no
    list of plain values holds an entry twice (a seed or benchmark listed twice would be one run counted twice)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_as_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, bool) for v in values) and _numeric(cls.model_fields[info.field_name].annotation):
            raise ValueError("Input should be a number, not true/false")
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _no_repeated_entries(cls, value: Any) -> Any:
        if isinstance(value, list) and (problem := repeated(value)):
            raise ValueError(problem)
        return value


class MemberSettings(Strict):
    """The settings of one member of a registry (an executor, say): ``kind`` names the member and the
    other fields are its own. A subclass per registry sets ``MEMBERS``, which holds each member's
    settings model under its kind (a ``Registry`` whose ``on_miss`` loads the run's plugins, which may
    register more); a field typed with that subclass (wrapped in ``SerializeAsAny``, so a member's own
    fields are written out too) is validated by ``choose``."""

    MEMBERS: ClassVar[Registry]
    kind: str
    """The member: one of the registered names."""

    @classmethod
    def variants(cls) -> list[type[MemberSettings]]:
        """Every registered member's settings model, by kind."""
        return [cls.MEMBERS.get(name) for name in cls.MEMBERS.names()]

    @classmethod
    def register(cls, settings: type[MemberSettings]) -> type[MemberSettings]:
        """Register ``settings`` under its ``kind``'s default (once; the same model again is a no-op); returns it.

        Raises:
            ValueError: another model holds that kind.
        """
        kind = settings.model_fields["kind"].default
        if kind not in cls.MEMBERS or cls.MEMBERS.get(kind) is not settings:
            cls.MEMBERS.register_object(kind, settings)
        return settings

    @classmethod
    def choose(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """A field validator's body (mode ``wrap``): a plain name stands for ``{kind: name}``, and a
        mapping is validated by the settings model of its ``kind``.

        Raises:
            ValueError: the kind is missing or unknown (one line, naming the known ones).
        """
        if isinstance(value, str):
            value = {"kind": value}
        if not isinstance(value, dict):
            return handler(value)
        default = cls.model_fields["kind"].default
        kind = value.get("kind", None if default is PydanticUndefined else default)
        if not isinstance(kind, str) or not cls.MEMBERS.known(kind):  # a plugin of the run may register it
            known = cls.MEMBERS.names()
            what = f"unknown {cls.MEMBERS.kind} {kind!r}{did_you_mean(str(kind), known)}" if kind is not None else f"no {cls.MEMBERS.kind} kind"
            raise ValueError(f"{what}; the {cls.MEMBERS.kind}s are {', '.join(known)}")
        return cls.MEMBERS.get(kind).model_validate(value)

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        """A member's own schema; for the registry's base, any member's (what a Prefect deployment
        checks its parameters against)."""
        if "MEMBERS" not in cls.__dict__:
            return handler(schema)
        return {"anyOf": [handler(member.__pydantic_core_schema__) for member in cls.variants()]}


def _settings_fields(model: type[BaseModel]) -> list[str]:
    """The settings ``model`` takes: its fields, or for ``MemberSettings`` every member's."""
    models = model.variants() if issubclass(model, MemberSettings) else [model]
    return list(dict.fromkeys(name for m in models for name in m.model_fields))


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


def describe_error(root: type[BaseModel], error: dict[str, Any]) -> str:
    """One line for a pydantic error: the YAML path, then what is wrong (with did-you-mean for an unknown key)."""
    loc = tuple(error["loc"])
    path = yaml_path(loc)
    if error["type"] == "extra_forbidden":
        model, key = model_at(root, loc), str(loc[-1])
        if model and issubclass(model, MemberSettings) and (takers := [v.model_fields["kind"].default for v in model.variants() if key in v.model_fields]):
            what = model.MEMBERS.kind
            return f"{path}: not a setting of this {what} kind; the {what}s that take it: {', '.join(takers)}"
        hint = did_you_mean(key, _settings_fields(model)) if model else ""
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
            close = difflib.get_close_matches(str(e["loc"][-1]), _settings_fields(model) if model else [], n=1, cutoff=0.6)
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
    expanded (a mapping of name -> model as ``<name>``; a ``MemberSettings`` field as every member's
    settings, each meaning led by the kinds that take it), in declaration order. The meaning is the
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
            nested = _member_rows(sub, f"{path}.", field.default) if issubclass(sub, MemberSettings) else reference_rows(sub, f"{path}.")
            rows += [(p, t, d, role if role != "key" else r, m) for p, t, d, r, m in nested]
            continue
        rows.append((path, _type_text(annotation), _default_text(field), role, _meaning(field)))
    return rows


def _meaning(field: Any) -> str:
    return " ".join((field.description or "").split())


def _member_rows(model: type[MemberSettings], prefix: str, default: Any) -> list[tuple[str, str, str, str, str]]:
    """The rows of a ``MemberSettings`` field: ``kind`` (every registered name; its default is
    ``default``'s), then each setting some member takes, as the first member that takes it has it."""
    variants = model.variants()
    kind = f"'{default.kind}'" if isinstance(default, MemberSettings) else "required"
    rows = [(f"{prefix}kind", " | ".join(repr(v.model_fields["kind"].default) for v in variants), kind, "key", _meaning(model.model_fields["kind"]))]
    for name in [n for n in _settings_fields(model) if n != "kind"]:
        takers = [v for v in variants if name in v.model_fields]
        field = takers[0].model_fields[name]
        owners = ", ".join(v.model_fields["kind"].default for v in takers)
        rows.append((f"{prefix}{name}", _type_text(field.annotation), _default_text(field), key_role(takers[0], name) or "key",
                     f"({owners}) {_meaning(field)}"))
    return rows


def reference_table(rows: list[tuple[str, str, str, str, str]]) -> str:
    """``reference_rows`` as a Markdown table."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| setting | type | default | in keys | meaning |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| `{p}` | `{cell(t)}` | `{cell(d)}` | {r} | {cell(m)} |" for p, t, d, r, m in rows]
    return "\n".join(lines) + "\n"
