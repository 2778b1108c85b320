"""Loading a named pipeline, validated against the schema and the task catalog."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from muppet_core.artifacts.backend import scheme_of
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import PipelineConfig, PipelinesFile, get_pipeline, parse_pipelines
from muppet_core.errors import BackboneError, ConfigError, first_line
from muppet_core.models.sources import anchor_backbone, source_of
from muppet_core.plugins import use_plugins
from muppet_core.tasks.catalog import check_pipeline_tasks, use_catalog_dirs
from muppet_core.yamlfile import load_yaml

if TYPE_CHECKING:
    from muppet_core.models.backbone import Variant

DEFAULT_FILE = "pipelines.yaml"
MIRROR_ENV = "MUPPET_DATA_MIRROR"
STORE_ENV = "MUPPET_STORE"


def load_pipelines(path: str | os.PathLike[str]) -> PipelinesFile:
    """Load and validate a pipelines file; relative paths inside it are made absolute.

    Raises:
        ConfigError: with one line per problem, each naming the YAML path of the field.
    """
    path = Path(path)
    parsed = parse_pipelines(load_yaml(path), path.name)
    base = path.resolve().parent
    return PipelinesFile(
        catalog=[_absolute(d, base) for d in parsed.catalog],
        plugins=parsed.plugins,
        pipelines={name: _anchor(p, base) for name, p in parsed.pipelines.items()},
    )


def _absolute(location: str | None, base: Path) -> str | None:
    if location is None or "://" in location or os.path.isabs(location):
        return location
    return str((base / location).resolve())


def _anchor(pipeline: PipelineConfig, base: Path) -> PipelineConfig:
    """Resolve relative paths against pipelines.yaml's folder and apply environment overrides."""
    mirror = os.environ.get(MIRROR_ENV) or _absolute(pipeline.data.mirror, base)
    store = os.environ.get(STORE_ENV) or _absolute(pipeline.store, base)
    # The file's store options are its store's backend's: a store of another kind from the environment takes its defaults.
    options = pipeline.store_options if scheme_of(store) == scheme_of(pipeline.store) else {}
    pft = pipeline.prefinetune
    watch = pipeline.watch.model_copy(
        update={
            "list_file": _absolute(pipeline.watch.list_file, base),
            "backbones": [anchor_backbone(b, base) for b in pipeline.watch.backbones],
        }
    )
    files = {"deepspeed_config": _absolute(pft.deepspeed_config, base), "hostfile": _absolute(pft.hostfile, base)}
    return pipeline.model_copy(
        update={
            "store": store,
            "store_options": options,
            "backbone": anchor_backbone(pipeline.backbone, base),
            "data": pipeline.data.model_copy(update={"mirror": mirror}),
            "watch": watch,
            "prefinetune": pft.model_copy(update=files),
        }
    )


def load_validated(path: str | os.PathLike[str] = DEFAULT_FILE) -> PipelinesFile:
    """Every pipeline in the file, schema- and catalog-checked; the file's plugins (``plugins:``) are
    imported and its own catalog folders (``catalog:``) join the package's catalog, for this process
    and the processes it starts."""
    use_plugins(_plugin_modules(path), str(Path(path).resolve().parent))  # first: a plugin may register a tracker kind the file names
    pipelines = load_pipelines(path)
    use_catalog_dirs(pipelines.catalog, os.path.basename(path))
    check_pipeline_tasks(pipelines, os.path.basename(path))
    return pipelines


def _plugin_modules(path: str | os.PathLike[str]) -> list[str]:
    """The file's top-level ``plugins:`` as written, when it is a list of names (else none: validating
    the whole file reports it)."""
    raw = load_yaml(Path(path))
    listed = raw.get("plugins", []) if isinstance(raw, dict) else []
    return listed if isinstance(listed, list) and all(isinstance(m, str) for m in listed) else []


def load_pipeline(name: str, path: str | os.PathLike[str] = DEFAULT_FILE) -> PipelineConfig:
    """One pipeline by name.

    Raises:
        ConfigError: the file is invalid or has no such pipeline.
    """
    return get_pipeline(load_validated(path), name)


def backbone_problem(spec: str) -> str | None:
    """Why a backbone cannot be found on this machine, or None; nothing is imported or downloaded
    (see ``muppet_core.models.sources``: no source claims it, or its source's ``problem``)."""
    try:
        return source_of(spec).problem(spec)
    except BackboneError as exc:
        return str(exc)


def check_backbones(pipeline: PipelineConfig, name: str, source: str = DEFAULT_FILE, override: list[str] | None = None) -> None:
    """Refuse, before any work starts, backbones that cannot be found (see ``backbone_problem``): the
    pipeline's own and its watch list's, or ``override`` (the command line's) instead.

    Raises:
        ConfigError: one line per backbone, naming where it came from and the reason.
    """
    problems = [f"{where}: {p}" for where, spec in _named_backbones(pipeline, name, override) if (p := backbone_problem(spec))]
    if problems:
        raise ConfigError(problems, source)


def _named_backbones(pipeline: PipelineConfig, name: str, override: list[str] | None) -> list[tuple[str, str]]:
    """(where it is named, backbone) for every backbone a run evaluates: ``override`` (the command
    line's), else the pipeline's own and its watch list's (see ``pipeline_backbones``)."""
    if override:
        return [(f"--backbone {b}", b) for b in dict.fromkeys(override)]
    own, *watched = pipeline_backbones(pipeline)
    return [(f"pipelines.{name}.backbone", own), *((f"pipelines.{name}.watch: backbone '{b}'", b) for b in watched)]


def resolve_backbones(
    pipeline: PipelineConfig, name: str, cache_dir: Path, override: list[str] | None = None, source: str = DEFAULT_FILE,
) -> list[Variant]:
    """Every backbone a run evaluates (as ``check_backbones`` names them), resolved by its source
    (fetched into ``cache_dir`` where remote) and checked against the pipeline before any work: its
    tokenizer is its own, and each stage's ``max_length`` fits its positions (``models.backbone.fit_problems``).

    Raises:
        ConfigError: one line per problem, naming the backbone or the setting.
    """
    from muppet_core.models.backbone import base_variant, fit_problems

    lengths = {f"pipelines.{name}.finetune.max_length": pipeline.finetune.max_length}
    if pipeline.prefinetune.enabled:
        lengths = {f"pipelines.{name}.prefinetune.max_length": pipeline.prefinetune.max_length, **lengths}
    bases, problems = [], []
    for where, spec in _named_backbones(pipeline, name, override):
        try:
            base = base_variant(spec, cache_dir)
            problems += [f"{setting or where}: {problem}" for setting, problem in fit_problems(base.encoder_path, lengths)]
        except BackboneError as exc:
            problems.append(f"{where}: {exc}")
            continue
        bases.append(base)
    if problems:
        raise ConfigError(problems, source)
    return bases


def check_devices(pipeline: PipelineConfig, name: str, source: str = DEFAULT_FILE) -> None:
    """Refuse, before any work, a ``device`` this machine does not have: pre-finetuning's, and the
    fine-tunes' unless their executor runs them on other machines (``ExecutorSettings.remote``).

    Raises:
        ConfigError: one line per setting.
    """
    pft, ft = pipeline.prefinetune, pipeline.finetune
    named = {"prefinetune": pft.device if pft.enabled else None, "finetune": None if ft.executor.remote else ft.device}
    if not any(named.values()):
        return  # unset: each rank takes what it finds (torch is not even imported)
    from muppet_core.models.devices import device_problem

    problems = [f"pipelines.{name}.{stage}.device: {p}" for stage, setting in named.items() if setting and (p := device_problem(setting))]
    if problems:
        raise ConfigError(problems, source)


def open_store(pipeline: PipelineConfig, root: str | None = None) -> ArtifactStore:
    """The pipeline's artifact store, opened with its ``store_options`` (``root``: another store
    instead, which takes those options where its scheme is the same)."""
    root = root or pipeline.store
    return ArtifactStore(root, options=pipeline.store_options if scheme_of(root) == scheme_of(pipeline.store) else None)


def check_store(pipeline: PipelineConfig) -> None:
    """Refuse, before any work, a store that refuses access or does not answer, and a store only this
    machine reaches when work runs on other machines.

    Raises:
        StoreError: one line: which store, what failed, what to do.
    """
    store = open_store(pipeline)
    store.check_access()
    pft = pipeline.prefinetune
    if pft.enabled and pft.multi_node():
        store.require_shared(pft.multi_node(), pft.shared_store)


def read_watch_list(location: str) -> list[str]:
    """The backbones of a watch-list file (local or a URI): one per line, # comments and blank lines skipped.

    Raises:
        ConfigError: the file cannot be read.
    """
    import fsspec

    try:
        with fsspec.open(location, "r", encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        raise ConfigError([f"watch.list_file: {location} does not exist (create it with one backbone per line)"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"watch.list_file: cannot read {location}: {first_line(exc)}"]) from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def pipeline_backbones(pipeline: PipelineConfig) -> list[str]:
    """Every backbone a run of the pipeline evaluates, in order and without repeats: its own, the
    watch list's, then the watch-list file's lines (read now)."""
    listed = [pipeline.backbone, *pipeline.watch.backbones]
    if pipeline.watch.list_file:
        listed += read_watch_list(pipeline.watch.list_file)
    return list(dict.fromkeys(listed))


def preflight(name: str, config: str, backbones: list[str] | None = None, store: str | None = None) -> None:
    """Refuse before any work starts: bad config, backbones that cannot be found (the pipeline's,
    its watch list's, or ``backbones`` given on the command line), a ``device`` this machine lacks,
    datasets found neither in the mirror nor on the hub, a store that refuses access, a tracking
    server that does not answer, and backbones that, once resolved, have no tokenizer of their own
    or fewer positions than ``max_length`` (``resolve_backbones``).

    Raises:
        ConfigError, DataSourceError, StoreError, TrackingError: one line per problem.
    """
    from muppet_core.data.sources import hub_reachable_or_raise
    from muppet_core.tasks.catalog import get_task
    from muppet_core.tracking import check_tracking

    pipeline = load_pipeline(name, config)
    source = os.path.basename(config)
    check_backbones(pipeline, name, source, backbones)
    check_devices(pipeline, name, source)
    for task in pipeline.data_tasks():
        hub_reachable_or_raise(get_task(task), pipeline.data.mirror)
    pipeline = pipeline.model_copy(update={"store": store}) if store else pipeline
    check_store(pipeline)
    check_tracking(pipeline.tracking)  # a tracking server that does not answer
    resolve_backbones(pipeline, name, open_store(pipeline).cache_dir, backbones, source)

