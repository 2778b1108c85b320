"""Faults in the artifact store: the S3 server SIGKILLed while an artifact is being written, stored
bytes flipped (locally and on S3), and two runs of one pipeline racing on the same store."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from muppet_core.artifacts.manifest import local_sha256
from muppet_core.artifacts.stage import run_cached
from muppet_core.artifacts.store import CORRUPT, MANIFEST, ArtifactStore
from muppet_core.config import DataConfig
from muppet_core.data.stage import data_stage
from muppet_core.errors import StoreError
from tests.conftest import REPO
from tests.integration.conftest import BENCHMARKS, SMALL_TASKS, write_pipeline
from tests.servers.seaweed import BUCKET, SeaweedServer


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}


def _flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


def test_server_killed_mid_write_leaves_no_partial_artifact_and_a_rerun_completes(tmp_path, monkeypatch, fault_report):
    import s3fs

    server = SeaweedServer(tmp_path / "weed", credentials={"muppet": "muppet-secret"})
    for k, v in server.env().items():
        monkeypatch.setenv(k, v)
    s3fs.S3FileSystem.clear_instance_cache()
    with server:
        server.start(bucket=BUCKET)
        store = ArtifactStore(f"s3://{BUCKET}/store", cache_dir=str(tmp_path / "cache"),
                              options={"chunk_bytes": 5 << 20, "max_concurrency": 1, "backoff_s": 0.5})
        built: list[str] = []

        def build_data(out: Path) -> None:
            built.append("data")
            (out / "rows.json").write_text(json.dumps(list(range(1000))))

        def build_model(out: Path) -> None:  # four 12 MiB files, the same bytes every time
            built.append("model")
            rng = random.Random(0)
            for i in range(4):
                (out / f"shard-{i}.bin").write_bytes(rng.randbytes(12 << 20))

        def pipeline():
            return run_cached(store, "data", "toy", "kdata", build_data), run_cached(store, "model", "toy", "kmodel", build_model)

        seen_by_reader, real_put = [], store.backend.fs.put_file

        def put_file(lpath, rpath, **kw):
            if rpath.endswith("shard-1.bin") and server.process.poll() is None:  # shard-0 has landed
                seen_by_reader.append(ArtifactStore(store.root, cache_dir=str(tmp_path / "reader")).has("model", "kmodel"))
                threading.Timer(0.1, server.kill).start()  # SIGKILL while shard-1 is uploading
            return real_put(lpath, rpath, **kw)

        with monkeypatch.context() as mp:
            mp.setattr(store.backend.fs, "put_file", put_file)
            started = time.monotonic()
            with pytest.raises(StoreError) as err:
                pipeline()
            failed_after = time.monotonic() - started
        message = str(err.value)
        assert message.startswith(f"could not upload {store.uri('model', 'kmodel')}/shard-") and "after 3 attempts" in message, message
        assert "muppet-secret" not in message and "\n" not in message
        assert seen_by_reader == [False] and failed_after < 90

        server.restart()
        reader = ArtifactStore(store.root, cache_dir=str(tmp_path / "reader"))
        assert not reader.has("model", "kmodel")
        with pytest.raises(FileNotFoundError):
            reader.fetch("model", "kmodel")
        leftovers = [p for p, i in server.fs().find(f"{BUCKET}/store/model", detail=True).items() if i["type"] == "file"]
        assert all(not p.endswith(MANIFEST) for p in leftovers)

        data, model = pipeline()
        assert (data.cache_hit, model.cache_hit) == (True, False) and built == ["data", "model", "model"]
        shards = _files(store.fetch("model", "kmodel"))
        rng = random.Random(0)
        assert shards == {f"shard-{i}.bin": rng.randbytes(12 << 20) for i in range(4)}
    fault_report(
        "fault",
        "SeaweedFS SIGKILLed 0.1 s into uploading the 2nd file of a 4 x 12 MiB artifact to s3:// (its 1st file had landed)",
        f"no reader saw it (has() false, fetch FileNotFoundError, {len(leftovers)} orphan file(s) without manifest); "
        f"publish failed after 3 attempts in {failed_after:.0f}s with one-line StoreError '{message[:90]}...'; "
        "after a restart the re-run took the finished stage from the store and completed the killed one",
    )


def _problem(warning: str) -> str:
    """The file and what is wrong with it, from a corrupt-artifact warning."""
    return warning.splitlines()[0].split(" is corrupt: ")[-1].split(";")[0]


def _corrupt_and_recompute(store: ArtifactStore, mirror: str, flip, caplog) -> tuple[str, str]:
    """Store rte's data artifact, flip a byte of its largest file via ``flip(rel)``, run the stage
    again; returns (the file, the warning)."""
    config = DataConfig(mirror=mirror)
    first = data_stage("rte", config, store)
    original_manifest = store.manifest("data", first.key)["files"]
    original = _files(store.fetch("data", first.key))
    target = max(original, key=lambda rel: len(original[rel]))
    flip(first.key, target)
    with caplog.at_level(logging.WARNING, logger="muppet_core.artifacts"):
        second = data_stage("rte", config, store)
    warning = "\n".join(r.getMessage() for r in caplog.records if "corrupt artifact" in r.getMessage())
    assert not second.cache_hit and second.key == first.key
    assert f"corrupt artifact data/rte ({first.key})" in warning and target in warning, warning
    assert _files(store.fetch("data", second.key)) == original  # recomputed byte for byte
    assert store.manifest("data", second.key)["files"] == original_manifest
    assert data_stage("rte", config, store).cache_hit
    return target, warning


def test_corrupt_local_artifact_is_detected_reported_and_recomputed(mirror, tmp_path, caplog, fault_report):
    root = tmp_path / "store"
    store = ArtifactStore(str(root))

    def flip(key: str, rel: str) -> None:
        path = root / "data" / key / rel
        path.write_bytes(_flip(path.read_bytes()))

    target, warning = _corrupt_and_recompute(store, mirror, flip, caplog)
    (aside,) = (root / CORRUPT / "data").iterdir()
    assert local_sha256(aside / target) != json.loads((aside / MANIFEST).read_text())["files"][target]
    fault_report("fault", f"one byte flipped in data/rte's {target} in a local store",
                 f"sha256 mismatch found on read; warning 'corrupt artifact data/rte (<key>): ...{_problem(warning)}'; moved to {CORRUPT}/; "
                 "recomputed, equal byte for byte to the original")


def test_corrupt_s3_artifact_is_detected_reported_and_recomputed(seaweed, mirror, tmp_path, caplog, fault_report):
    store = ArtifactStore(f"s3://{BUCKET}/corrupt-store", cache_dir=str(tmp_path / "cache"))
    fs = seaweed.fs()

    def flip(key: str, rel: str) -> None:
        path = f"{BUCKET}/corrupt-store/data/{key}/{rel}"
        fs.pipe(path, _flip(fs.cat(path)))
        shutil.rmtree(tmp_path / "cache" / "data" / key)  # read as a machine without a copy would

    target, warning = _corrupt_and_recompute(store, mirror, flip, caplog)
    key = data_stage("rte", DataConfig(mirror=mirror), store).key
    copy = tmp_path / "cache" / "data" / key / target
    copy.write_bytes(_flip(copy.read_bytes()))  # now only the local copy is damaged
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="muppet_core.artifacts"):
        again = data_stage("rte", DataConfig(mirror=mirror), store)
    assert again.cache_hit and "is damaged" in caplog.text and "downloading it again" in caplog.text
    assert local_sha256(copy) == store.manifest("data", key)["files"][target]
    fault_report("fault", f"one byte flipped in data/rte's {target} on S3 (SeaweedFS), then in a local download of it",
                 f"S3: sha256 mismatch found on download; warning 'corrupt artifact data/rte (<key>): ...{_problem(warning)}'; deleted from the bucket, "
                 "recomputed equal to the original. Local copy: reported and downloaded again, no recompute")


def test_two_runs_of_one_pipeline_at_once_on_one_store(prefect_harness, tiny_backbone, mirror, tmp_path, fault_report):
    from prefect.settings import PREFECT_API_URL

    store = tmp_path / "store"
    config = write_pipeline(tmp_path / "pipelines.yaml", tiny_backbone, mirror, store, seeds=[0], tasks=SMALL_TASKS)
    # Both runs report to the session's Prefect server rather than each starting a temporary one of its
    # own (some 12 CPU-seconds each): the race is on the store, which Prefect plays no part in (the two
    # runs share the server's fine-tune concurrency limit, as runs on one server do).
    base = {k: v for k, v in os.environ.items() if k != "MUPPET_STORE"}
    base["PREFECT_API_URL"] = PREFECT_API_URL.value()
    procs = []
    for i in range(2):
        env = {**base, "PREFECT_HOME": str(tmp_path / f"prefect-{i}"), "MUPPET_CACHE": str(tmp_path / f"cache-{i}")}
        out = open(tmp_path / f"run-{i}.log", "w")
        procs.append((subprocess.Popen([sys.executable, "-m", "flows.cli", "run", "tiny", "--config", str(config)],
                                       stdout=out, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env), out))
    started = time.monotonic()
    for proc, out in procs:
        proc.wait(timeout=900)
        out.close()
    elapsed = time.monotonic() - started
    logs = [(tmp_path / f"run-{i}.log").read_text() for i in range(2)]
    assert [p.returncode for p, _ in procs] == [0, 0], "\n".join(log[-3000:] for log in logs)
    assert all(f"leaderboard: {store}/pipelines/tiny/leaderboard.csv" in log for log in logs)

    manifests = sorted(store.glob(f"*/*/{MANIFEST}"))
    stages = sorted(p.parent.parent.name for p in manifests)
    assert stages == sorted(["data"] * (len(SMALL_TASKS) + len(BENCHMARKS)) + ["finetune"] * 2 * len(BENCHMARKS) + ["leaderboard", "prefinetune"])
    for path in manifests:  # every artifact's files are exactly its manifest's
        folder, listed = path.parent, json.loads(path.read_text())["files"]
        assert listed and set(_files(folder)) == set(listed), folder
        assert all(local_sha256(folder / rel) == sha for rel, sha in listed.items()), folder
    assert not (store / "failures").exists(), sorted((store / "failures").rglob("*.json"))
    assert not [p for p in store.rglob("*") if ".tmp-" in p.name or ".stale-" in p.name]
    from muppet_core.leaderboard.history import read_history

    entries = read_history(ArtifactStore(str(store)), "tiny")
    assert len(entries) == 2 and entries[0].board == entries[1].board  # both runs published the same results
    assert not entries[0].board.missing()
    waited = sum(log.count("is being built by another run: waiting for it") for log in logs)
    discarded = sum(log.count("was published by another run first") for log in logs)
    fault_report("fault", "two `muppet run` processes of the tiny pipeline started at once on one local store",
                 f"both finished in {elapsed:.0f}s with identical, complete leaderboards; all {len(manifests)} artifacts match their "
                 f"manifests; {waited} build(s) waited for the other run's build of the same key and took it from the store, "
                 f"{discarded} finished copy(ies) were discarded in favour of the one published first; no staging folders left")
