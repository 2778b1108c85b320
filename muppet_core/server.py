"""A local Prefect server as a child process: `muppet serve --with-server` and the tests use it.

`muppet serve --with-server` starts it with an auth string (see muppet_core.auth) unless told
``--no-auth``; the string reaches every client this process starts through PREFECT_API_AUTH_STRING.
"""

from __future__ import annotations

import atexit
import functools
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from muppet_core.auth import CLIENT_VAR, SERVER_VAR, resolve_auth_string
from muppet_core.errors import MuppetError


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    """Whether the Prefect API at ``api_url`` answers its health check."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


DATABASE_VAR = "PREFECT_API_DATABASE_CONNECTION_URL"
TEMPORARY_STOP_S = 1.0
"""How long the temporary server of a `muppet run` gets to stop at exit before it is killed."""


class LocalServer:
    """``prefect server start`` on 127.0.0.1, started and stopped by us: its database is SQLite
    under ``home``, or the one ``database_url`` names (PostgreSQL: ``postgresql+asyncpg://...``).

    Args:
        port: the port of the API and the UI.
        home: PREFECT_HOME of the server (its database lives there).
        log: file that receives the server's output.
        auth_string: what every request must carry as Basic credentials; None: no authentication.
        database_url: the server's database (``PREFECT_API_DATABASE_CONNECTION_URL``); None: as
            this process's environment says, else SQLite under PREFECT_HOME.
    """

    def __init__(self, port: int = 4200, home: str | os.PathLike[str] | None = None, log: str | os.PathLike[str] | None = None,
                 auth_string: str | None = None, database_url: str | None = None):
        self.port = port
        self.home = Path(home) if home else None
        self.log_path = Path(log) if log else None
        self.auth_string = auth_string
        self.database_url = database_url
        self.process: subprocess.Popen | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """The variables a client (or this server) needs to talk to this server."""
        env = {"PREFECT_API_URL": self.api_url, "PREFECT_UI_API_URL": self.api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        if self.home:
            env["PREFECT_HOME"] = str(self.home)
        if self.auth_string:
            env[CLIENT_VAR] = self.auth_string
        return env

    def start(self, timeout: float = 120.0) -> LocalServer:
        """Start the server and wait until its API is healthy.

        Raises:
            MuppetError: the port is taken by something else, or the server did not come up.
        """
        if healthy(self.api_url):
            raise MuppetError(f"a Prefect server already answers on {self.api_url}; set PREFECT_API_URL to use it instead")
        env = {**os.environ, **self.environment()}
        env.pop("PREFECT_API_KEY", None)
        env.pop(SERVER_VAR, None)
        if self.auth_string:
            env[SERVER_VAR] = self.auth_string
        if self.database_url:
            env[DATABASE_VAR] = self.database_url
        prefect = Path(sys.executable).with_name("prefect")
        command = [str(prefect) if prefect.exists() else "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not healthy(self.api_url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                where = f"; its log: {self.log_path}" if self.log_path else ""
                raise MuppetError(f"the Prefect server did not come up on {self.api_url}{where}")
            time.sleep(0.5)
        return self

    def stop(self, kill: bool = False) -> None:
        """Stop the server (SIGTERM, SIGKILL after 15 s; ``kill``: SIGKILL at once) and its children."""
        if self.process is None or self.process.poll() is not None:
            return
        group = os.getpgid(self.process.pid)
        os.killpg(group, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.wait(timeout=15)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def start_temporary_server() -> None:
    """Start Prefect's temporary server (its mode without PREFECT_API_URL: SQLite under PREFECT_HOME,
    stopped when this process exits) now, in a session of its own. Started by Prefect at the first
    client call, it shares the terminal's process group, so Ctrl-C killed it at once and the run then
    spent minutes reporting its stop to a server that was gone; apart, Ctrl-C reaches the run alone,
    which stops its work, reports it, then stops the server."""
    from prefect.server.api.server import SubprocessASGIServer

    popen = subprocess.Popen
    subprocess.Popen = functools.partial(popen, start_new_session=True)  # Prefect starts it with subprocess.Popen
    try:
        server = SubprocessASGIServer()  # the instance every client of this process then uses
        server.start()
    finally:
        subprocess.Popen = popen
    atexit.register(_stop_soon, server)  # before Prefect's own stop (last in, first out), after its log and event workers drained


def _stop_soon(server, grace: float = TEMPORARY_STOP_S) -> None:
    """Stop the temporary server at exit: SIGTERM, SIGKILL ``grace`` seconds later. Prefect waits 5 s,
    which a server still holding the exiting run's event connection always took (SQLite survives the kill)."""
    process = server.server_process
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def redact_url(url: str) -> str:
    """``scheme://user:***@host/db``: a database URL as it may be printed."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def start_local_server(port: int, log: str | None = None, auth: bool = True, database_url: str | None = None) -> LocalServer:
    """`muppet serve --with-server`: start a local server, say where its auth string comes from
    (masked), and point this process and every process it starts at it.

    Args:
        port: the port of the API and the UI.
        log: file that receives the server's output.
        auth: False (``--no-auth``) starts it without authentication, with a warning.
        database_url: its database (``--database-url``, e.g. PostgreSQL); None: SQLite under PREFECT_HOME.
    """
    secret = resolve_auth_string() if auth else None
    server = LocalServer(port, log=log, auth_string=secret.value if secret else None, database_url=database_url)
    on = f" on {redact_url(database_url)}" if database_url else ""
    print(f"starting a Prefect server on {server.ui_url}{on} ...", flush=True)
    if secret:
        print(f"auth string: {secret}", flush=True)
        if secret.path:
            print(f"  the UI's login asks for it; in another shell: export {CLIENT_VAR}=\"$(cat {secret.path})\"", flush=True)
    else:
        print(f"muppet: warning: --no-auth: the Prefect server on {server.ui_url} has no authentication; anyone who can "
              "connect to it (every user of this machine) can start, cancel and delete runs and read every log", file=sys.stderr, flush=True)
    server.start()
    os.environ.update(server.environment())
    _settings_from_environment()
    print(f"Prefect UI: {server.ui_url}", flush=True)
    return server


def _settings_from_environment() -> None:
    """Make Prefect read its settings from this process's environment again. It reads them once, when it
    is imported, and a pipelines file with a schedule imports it before the server starts: without this,
    the served deployments went to a temporary server of their own (on SQLite, the server's database
    file hid it; on PostgreSQL they never reached the server)."""
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()
