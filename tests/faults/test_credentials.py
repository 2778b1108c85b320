"""Credentials never leak: the tiny pipeline runs against SeaweedFS with distinctive fake
credentials (and a Prefect API key), once accepted and once refused, through a Prefect server that
demands a distinctive auth string, and is deployed there; none of those strings (nor the auth
string as the Basic header carries it) appears in any log line, any object in the bucket (artifacts,
result records), anything the server recorded (logs, artifacts, runs, deployments' parameters and
job variables) or any file the runs and the server left on disk."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.errors import StoreError
from muppet_core.server import LocalServer
from tests.conftest import REPO
from tests.integration.conftest import SMALL_TASKS, write_pipeline
from tests.servers.process import free_ports
from tests.servers.seaweed import BUCKET, SeaweedServer

ACCESS_KEY = "AKIAMUPPETLEAKCHECK7Q"
SECRET_KEY = "muppetLeakCheck/Secret+9fK2xQ7vR4tZ1wY8"
WRONG_SECRET = "refusedLeakCheck/Other+3hL5pW0sN6"
PREFECT_API_KEY = "pnu_muppetLeakCheckPrefectKey4Jd8Ks0Q"
AUTH_SECRET = "authLeakCheck-Zq8Xv2Lp5Tn0Wr7Ys4"
AUTH_STRING = f"muppet:{AUTH_SECRET}"
AUTH_HEADER = base64.b64encode(AUTH_STRING.encode()).decode()  # as the Basic header carries it
NEEDLES = (ACCESS_KEY, SECRET_KEY, WRONG_SECRET, PREFECT_API_KEY, AUTH_SECRET, AUTH_HEADER)


def _leaks(label: str, data: bytes) -> list[str]:
    return [f"{label}: {needle[:8]}..." for needle in NEEDLES if needle.encode() in data]


def _run(config: Path, env: dict[str, str], command: str = "run") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", command, "tiny", "--config", str(config)],
                          capture_output=True, cwd=REPO, env=env, timeout=600, check=False)


def _records(api: str) -> dict[str, list[dict]]:
    """Everything the Prefect server recorded that a run or a deployment could have put a secret in."""
    headers = {"Authorization": f"Basic {AUTH_HEADER}"}
    kinds = ("logs", "artifacts", "flow_runs", "task_runs", "deployments", "variables", "block_documents")
    return {kind: httpx.post(f"{api}/{kind}/filter", json={}, headers=headers, timeout=30).raise_for_status().json() for kind in kinds}


def test_credentials_never_reach_logs_objects_or_local_files(tiny_backbone, mirror, tmp_path, monkeypatch, caplog, fault_report):
    import s3fs

    work = tmp_path / "work"  # everything the runs and the Prefect server write locally; SeaweedFS's folder is apart
    server = SeaweedServer(tmp_path / "weed", credentials={ACCESS_KEY: SECRET_KEY})
    work.mkdir()
    prefect = LocalServer(free_ports(1)[0], home=work / "prefect-server", log=work / "prefect-server.log", auth_string=AUTH_STRING)
    with server, prefect:
        server.start(bucket=BUCKET)
        store = f"s3://{BUCKET}/leak-store"
        config = write_pipeline(work / "pipelines.yaml", tiny_backbone, mirror, store, seeds=[0], tasks=SMALL_TASKS)
        base = {k: v for k, v in os.environ.items() if k != "MUPPET_STORE" and not k.startswith(("PREFECT_API", "PREFECT_SERVER_API"))}
        base.update(PREFECT_API_KEY=PREFECT_API_KEY, PREFECT_HOME=str(work / "prefect"), MUPPET_CACHE=str(work / "cache"),
                    PREFECT_API_URL=prefect.api_url, PREFECT_API_AUTH_STRING=AUTH_STRING)
        accepted = _run(config, {**base, **server.env(ACCESS_KEY, SECRET_KEY)})
        assert accepted.returncode == 0, accepted.stderr[-3000:]
        refused = _run(config, {**base, **server.env(ACCESS_KEY, WRONG_SECRET), "MUPPET_CACHE": str(work / "cache-refused")})
        assert refused.returncode != 0 and b"was denied" in refused.stderr, refused.stderr[-3000:]
        deployed = _run(config, {**base, **server.env(ACCESS_KEY, SECRET_KEY)}, command="deploy")
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        records = _records(prefect.api_url)
        (deployment,) = records["deployments"]
        assert deployment["parameters"] == {"pipeline": "tiny", "config": str(config)} and not deployment["job_variables"]
        assert records["logs"] and records["artifacts"] and records["flow_runs"] and records["task_runs"]
        server_env = Path(f"/proc/{prefect.process.pid}/environ").read_bytes()

        for k, v in {**server.env(ACCESS_KEY, WRONG_SECRET), "PREFECT_API_KEY": PREFECT_API_KEY, "PREFECT_API_AUTH_STRING": AUTH_STRING}.items():
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
        leaks += _leaks("stdout/stderr of `muppet deploy`", deployed.stdout + deployed.stderr)
        leaks += _leaks("captured log records", "\n".join(r.getMessage() for r in caplog.records).encode() + str(err.value).encode())
        leaks += [leak for kind, items in records.items() for leak in _leaks(f"the server's {kind}", json.dumps(items).encode())]
        leaks += [leak for path in objects for leak in _leaks(f"s3://{path}", fs.cat(path))]
        files = [p for p in work.rglob("*") if p.is_file()]
        leaks += [leak for path in files for leak in _leaks(str(path), path.read_bytes())]
    assert leaks == []
    assert _leaks("control", (tmp_path / "weed" / "s3.json").read_bytes())  # the search finds them where they are
    assert AUTH_STRING.encode() in server_env  # ... and the auth string where it is: the server's environment
    assert len(files) > 10 and len(objects) > 10
    assert any(p.name.endswith(".db") for p in files)  # the server's database was searched too
    fault_report("security", "the tiny pipeline on SeaweedFS with distinctive AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                 "and PREFECT_API_KEY values, accepted and refused (wrong secret), run and deployed through a Prefect "
                 "server that demands a distinctive PREFECT_API_AUTH_STRING",
                 f"none of them (nor the auth string's Basic header) in the runs' stdout/stderr, the captured log records, "
                 f"the {len(objects)} objects in the bucket, the server's {sum(map(len, records.values()))} records (logs, "
                 f"artifacts, runs, deployment parameters and job variables) or the {len(files)} local files (caches, "
                 "Prefect homes, the server's database and log); the refusal said only which variables to check")
