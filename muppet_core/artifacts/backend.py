"""Where the store's files live: a backend per URL scheme, registered by scheme.

``ArtifactStore`` knows manifests, keys and caching; a backend knows only how to read, write, list,
delete and lock files under a root. A local path is the ``local`` backend (scheme ``""`` or
``file``), ``s3://`` the ``s3`` backend; ``register_backend`` adds another (a plugin's, or a
test's). Each backend has its own options, a pydantic model (``Settings``) validated when the
backend is opened; none of them is part of any artifact key.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from muppet_core.errors import StoreError
from muppet_core.plugins import load_plugins
from muppet_core.registry import Registry, did_you_mean

BACKENDS = Registry("store backend", on_miss=load_plugins)
"""URL scheme -> backend class (``""``: a path on this machine)."""
BACKENDS.register("", "muppet_core.artifacts.local:LocalBackend")
BACKENDS.register("file", "muppet_core.artifacts.local:LocalBackend")
BACKENDS.register("s3", "muppet_core.artifacts.s3:S3Backend")
BACKENDS.register("s3a", "muppet_core.artifacts.s3:S3Backend")


class BackendSettings(BaseModel):
    """A backend's options (a backend without options uses this model as is)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreBackend:
    """The files of a store under one root, addressed by paths relative to it (``stage/key/file``).

    A member subclasses this, implements every method below and is registered by scheme. Errors:
    an absent file raises FileNotFoundError; a store that refuses or keeps failing raises StoreError
    (one line, no credential).

    Args:
        root: the store's root as configured (a path or a URI), without a trailing ``/``.
        settings: the backend's validated options.
    """

    Settings: ClassVar[type[BackendSettings]] = BackendSettings
    """The model of this backend's options."""

    def __init__(self, root: str, settings: BackendSettings):
        self.root, self.settings = root, settings

    def read(self, rel: str) -> bytes:
        """A file's bytes."""
        raise NotImplementedError

    def write(self, rel: str, data: bytes) -> None:
        """Write a file atomically: a reader sees the old content or the new, never part of it."""
        raise NotImplementedError

    def exists(self, rel: str) -> bool:
        """Whether a file (or a folder holding files) is there, as the store holds it now."""
        raise NotImplementedError

    def list(self, rel: str) -> list[str]:
        """The names of the files directly in the folder ``rel`` (an absent folder: none)."""
        raise NotImplementedError

    def find(self, rel: str) -> list[str]:
        """Every file under the folder ``rel``, as paths relative to it (an absent folder: none)."""
        raise NotImplementedError

    def delete(self, rel: str) -> None:
        """Delete a file, or a folder with everything under it; an absent one is no error."""
        raise NotImplementedError

    def put_file(self, rel: str, local: Path) -> None:
        """Copy a local file to ``rel`` (large files in parts, never whole in memory)."""
        raise NotImplementedError

    def get_file(self, rel: str, local: Path) -> None:
        """Copy the file ``rel`` to the local path ``local`` (its folder exists)."""
        raise NotImplementedError

    def put_dir(self, rel: str, local: Path, files: list[str], seal: tuple[str, bytes]) -> bool:
        """Copy ``files`` (paths relative to the local folder ``local``) to the folder ``rel``, then
        write the file ``seal`` (name, bytes) last: a folder holding it is complete. Returns False,
        copying nothing, when a complete folder is already there; a copy that fails leaves no seal.
        """
        raise NotImplementedError

    def discard(self, rel: str, seal: str) -> str:
        """Take the folder ``rel`` out of the store, its ``seal`` first (so it reads as absent at
        once); returns where it went ("deleted", or where it was set aside)."""
        raise NotImplementedError

    def local_path(self, rel: str) -> Path | None:
        """Where ``rel`` lives on this machine's filesystem, for a backend whose files do (None: nowhere)."""
        return None

    def lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Hold the lock ``name`` for the block: every process that reaches this store (on any
        machine that shares it) takes its turn. A holder that dies frees it."""
        raise NotImplementedError


def scheme_of(root: str) -> str:
    """The URL scheme of a store root (``""`` for a path)."""
    scheme, sep, _ = root.partition("://")
    return scheme.lower() if sep else ""


_OPENED: dict[str, dict[str, Any]] = {}
"""The options each store root was opened with in this process, by root: a store inside one of them
(its scratch folder, a run's checkpoints) opened without options of its own takes the nearest one's."""


def backend_class(root: str) -> type[StoreBackend]:
    """The backend registered for ``root``'s scheme.

    Raises:
        StoreError: one line: no backend has that scheme (with the known ones).
    """
    scheme = scheme_of(root)
    if not BACKENDS.known(scheme):  # a plugin of the run may register it (a worker opens its store before anything else)
        known = ", ".join(f"{s}://" for s in BACKENDS.names() if s)
        raise StoreError(f"no store backend for '{scheme}://' in {root}{did_you_mean(scheme, [s for s in BACKENDS.names() if s])}: "
                         f"a store is a path or one of {known}")
    return BACKENDS.get(scheme)


def backend_settings(root: str, options: dict[str, Any] | None) -> BackendSettings:
    """``options`` validated by the ``Settings`` of ``root``'s backend.

    Raises:
        StoreError: one line: no backend has that scheme, or an option is invalid (each named).
    """
    backend = backend_class(root)
    try:
        return backend.Settings.model_validate(options or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise StoreError(f"invalid options of the {scheme_of(root) or 'local'} store {root}: {problems}") from None


def inherited_options(root: str) -> dict[str, Any] | None:
    """The options of the nearest store root enclosing ``root`` (itself included) opened with options in this process."""
    nearest = max((r for r in _OPENED if root == r or root.startswith(f"{r}/")), key=len, default=None)
    return None if nearest is None else _OPENED[nearest]


def open_backend(root: str, options: dict[str, Any] | None = None) -> StoreBackend:
    """The backend of a store root, chosen by its scheme, with ``options`` validated by its ``Settings``
    (None: the options of the nearest enclosing root opened with some, see ``inherited_options``, else the defaults).

    Raises:
        StoreError: one line: no backend has that scheme (with the known ones), or an option is invalid.
    """
    root = root.rstrip("/") or root
    settings = backend_settings(root, inherited_options(root) if options is None else options)
    if options is not None:
        _OPENED[root] = dict(options)
    return backend_class(root)(root, settings)


def register_backend(scheme: str, backend: type[StoreBackend]) -> type[StoreBackend]:
    """Register ``backend`` for stores whose root starts with ``scheme://``; returns it.

    Raises:
        ValueError: a backend is already registered for that scheme.
    """
    BACKENDS.register_object(scheme, backend)
    return backend


def unregister_backend(scheme: str) -> None:
    """Forget the backend of ``scheme`` (for a plugin or test that registered its own)."""
    BACKENDS.unregister(scheme)



def read_file(location: str) -> bytes:
    """The bytes of one file named by a path or a URI (a job file in the store), read by its backend."""
    folder, _, name = location.rpartition("/")
    return open_backend(folder or ".").read(name)
