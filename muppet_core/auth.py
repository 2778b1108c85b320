"""The auth string of the Prefect server that `muppet serve --with-server` starts: where it comes
from, where it is kept, and how it is shown (never in full).

Prefect's self-hosted server compares the HTTP Basic credentials of every API request, and the
first message of every websocket, with ``PREFECT_SERVER_API_AUTH_STRING``; every client (the
``prefect`` and ``muppet`` commands, the serve runner, its flow runs, workers) sends
``PREFECT_API_AUTH_STRING``. Muppet takes the string from the environment or, failing that, from a
file under ``$PREFECT_HOME`` that it writes once, readable by its owner only.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import stat
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from muppet_core.errors import MuppetError

SERVER_VAR = "PREFECT_SERVER_API_AUTH_STRING"
"""What the server checks requests against."""
CLIENT_VAR = "PREFECT_API_AUTH_STRING"
"""What every client sends."""
FILE_NAME = "muppet-server-auth"
USER = "muppet"


def auth_file(environ: Mapping[str, str] = os.environ) -> Path:
    """Where this machine's generated auth string is kept: ``$PREFECT_HOME/muppet-server-auth``
    (``~/.prefect/muppet-server-auth`` when PREFECT_HOME is not set)."""
    return Path(environ.get("PREFECT_HOME") or "~/.prefect").expanduser() / FILE_NAME


def masked(value: str) -> str:
    """The auth string as it may be shown: its user part only (``muppet:***``)."""
    user, colon, _ = value.partition(":")
    return f"{user}:***" if colon else "***"


@dataclass(frozen=True)
class AuthString:
    """An auth string and where it came from; its ``str`` and ``repr`` never show it."""

    value: str = field(repr=False)
    source: str
    """``from PREFECT_API_AUTH_STRING``, ``read from PATH`` or ``generated into PATH ...``."""
    path: Path | None = None
    """The file it was read from or generated into."""

    def __str__(self) -> str:
        return f"{masked(self.value)} ({self.source})"


def _checked(value: str, where: str) -> str:
    value = value.strip()
    if not value:
        raise MuppetError(f"the auth string in {where} is empty")
    if not value.isascii() or not value.isprintable() or any(c.isspace() for c in value):
        raise MuppetError(f"the auth string in {where} must be printable ASCII without spaces (the UI's login sends it as Basic credentials)")
    return value


def read_auth_file(path: Path) -> str:
    """The auth string saved in ``path``.

    Raises:
        MuppetError: others than its owner may read or write the file, or it holds no usable string.
    """
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise MuppetError(f"{path} is open to other users (mode {stat.S_IMODE(mode):o}): run `chmod 600 {path}`, "
                          "and make a new one (delete it) if someone else may have read it")
    return _checked(path.read_text(encoding="ascii", errors="replace"), str(path))


def _generate(path: Path) -> str:
    """Write a new random auth string to ``path``, created readable and writable by its owner only."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    value = f"{USER}:{secrets.token_urlsafe(32)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # O_EXCL: never over another's file
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(value + "\n")
    return value


def resolve_auth_string(environ: Mapping[str, str] = os.environ) -> AuthString:
    """The auth string for a server this machine starts: ``PREFECT_SERVER_API_AUTH_STRING`` or
    ``PREFECT_API_AUTH_STRING`` from the environment, else the saved file, else a new random one
    (256 bits) saved there.

    Raises:
        MuppetError: both variables are set and differ, or the saved file is unsafe or unusable.
    """
    server, client = environ.get(SERVER_VAR), environ.get(CLIENT_VAR)
    if server and client and server.strip() != client.strip():
        raise MuppetError(f"{SERVER_VAR} and {CLIENT_VAR} differ: this machine's clients would be refused by its own server; unset one")
    for name, value in ((SERVER_VAR, server), (CLIENT_VAR, client)):
        if value:
            return AuthString(_checked(value, name), f"from {name}")
    path = auth_file(environ)
    try:
        return AuthString(_generate(path), f"generated into {path}, readable by its owner only", path)
    except FileExistsError:
        return AuthString(read_auth_file(path), f"read from {path}", path)


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def use_saved_auth_string(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Let a command talk to the server `muppet serve --with-server` started on this machine: when
    ``PREFECT_API_URL`` is a loopback URL and ``PREFECT_API_AUTH_STRING`` is not set, set it from
    the saved file (if there is one). The string is never sent to another host this way.

    Returns:
        Whether the variable was set.
    """
    if environ.get(CLIENT_VAR) or not _loopback(environ.get("PREFECT_API_URL") or ""):
        return False
    path = auth_file(environ)
    if not path.is_file():
        return False
    environ[CLIENT_VAR] = read_auth_file(path)
    return True
