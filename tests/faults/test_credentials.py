"""Credentials never leak: the tiny pipeline runs against SeaweedFS with distinctive fake
credentials (and a Prefect API key), once accepted and once refused, and none of those strings
appears in any log line, any object in the bucket or any file the runs left on disk."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.errors import StoreError
from tests.conftest import REPO
from tests.integration.conftest import write_pipeline
from tests.servers.seaweed import BUCKET, SeaweedServer

ACCESS_KEY = "AKIAMUPPETLEAKCHECK7Q"
SECRET_KEY = "muppetLeakCheck/Secret+9fK2xQ7vR4tZ1wY8"
WRONG_SECRET = "refusedLeakCheck/Other+3hL5pW0sN6"
PREFECT_API_KEY = "pnu_muppetLeakCheckPrefectKey4Jd8Ks0Q"
NEEDLES = (ACCESS_KEY, SECRET_KEY, WRONG_SECRET, PREFECT_API_KEY)


def _leaks(label: str, data: bytes) -> list[str]:
    return [f"{label}: {needle[:8]}..." for needle in NEEDLES if needle.encode() in data]


def _run(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", "run", "tiny", "--config", str(config)],
                          capture_output=True, cwd=REPO, env=env, timeout=600, check=False)


def test_credentials_never_reach_logs_objects_or_local_files(tiny_backbone, mirror, tmp_path, monkeypatch, caplog, fault_report):
    import s3fs

    work = tmp_path / "work"  # everything the runs write locally; the server's own folder is apart
    server = SeaweedServer(tmp_path / "weed", credentials={ACCESS_KEY: SECRET_KEY})
    with server:
        server.start(bucket=BUCKET)
        store = f"s3://{BUCKET}/leak-store"
        work.mkdir()
        config = write_pipeline(work / "pipelines.yaml", tiny_backbone, mirror, store, seeds=[0])
        base = {k: v for k, v in os.environ.items() if k not in ("MUPPET_STORE", "PREFECT_API_URL")}
        base.update(PREFECT_API_KEY=PREFECT_API_KEY, PREFECT_HOME=str(work / "prefect"), MUPPET_CACHE=str(work / "cache"))
        accepted = _run(config, {**base, **server.env(ACCESS_KEY, SECRET_KEY)})
        assert accepted.returncode == 0, accepted.stderr[-3000:]
        refused = _run(config, {**base, **server.env(ACCESS_KEY, WRONG_SECRET), "MUPPET_CACHE": str(work / "cache-refused")})
        assert refused.returncode != 0 and b"was denied" in refused.stderr, refused.stderr[-3000:]

        for k, v in {**server.env(ACCESS_KEY, WRONG_SECRET), "PREFECT_API_KEY": PREFECT_API_KEY}.items():
            monkeypatch.setenv(k, v)
        s3fs.S3FileSystem.clear_instance_cache()
        with caplog.at_level(logging.DEBUG, logger="muppet_core"), pytest.raises(StoreError) as err:
            ArtifactStore(store, cache_dir=str(work / "cache-in-process")).check_access()
        s3fs.S3FileSystem.clear_instance_cache()

        fs = server.fs(ACCESS_KEY, SECRET_KEY)
        objects = [p for p, i in fs.find(BUCKET, detail=True).items() if i["type"] == "file"]
        assert any(p.endswith("leaderboard.csv") for p in objects)
        leaks = _leaks("stdout/stderr of the accepted run", accepted.stdout + accepted.stderr)
        leaks += _leaks("stdout/stderr of the refused run", refused.stdout + refused.stderr)
        leaks += _leaks("captured log records", "\n".join(r.getMessage() for r in caplog.records).encode() + str(err.value).encode())
        leaks += [leak for path in objects for leak in _leaks(f"s3://{path}", fs.cat(path))]
        files = [p for p in work.rglob("*") if p.is_file()]
        leaks += [leak for path in files for leak in _leaks(str(path), path.read_bytes())]
    assert leaks == []
    assert _leaks("control", (tmp_path / "weed" / "s3.json").read_bytes())  # the search finds them where they are
    assert len(files) > 10 and len(objects) > 10
    fault_report("security", "the tiny pipeline on SeaweedFS with distinctive AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                 "and PREFECT_API_KEY values, accepted and refused (wrong secret)",
                 f"none of them in the runs' stdout/stderr, the captured log records, the {len(objects)} objects in the bucket "
                 f"or the {len(files)} local files (caches, Prefect home); the refusal said only which variables to check")
