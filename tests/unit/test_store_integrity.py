"""The local store's integrity: publishing over an artifact a concurrent run finished first,
concurrent publishers of one key, checksums checked on read, corrupt artifacts recomputed,
retries and their one-line errors."""

from __future__ import annotations

import json
import logging
import os
import threading
import time

import pytest

from muppet_core.artifacts import manifest as manifest_module
from muppet_core.artifacts.remote import transient, with_retries
from muppet_core.artifacts.stage import run_cached
from muppet_core.artifacts.store import CORRUPT, MANIFEST, ArtifactStore
from muppet_core.errors import CorruptArtifactError, StoreError


def _folder(path, files: dict[str, bytes]):
    for rel, data in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
    return path


def _matches_manifest(folder) -> bool:
    manifest = json.loads((folder / MANIFEST).read_text())
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {MANIFEST}
    return files == set(manifest["files"]) and all(
        manifest_module.local_sha256(folder / rel) == sha for rel, sha in manifest["files"].items())


def test_publishing_over_a_complete_artifact_keeps_it(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    store.publish("s", "k", _folder(tmp_path / "a", {"x.bin": b"first"}))
    before = os.stat(tmp_path / "store" / "s" / "k" / "x.bin")
    store.publish("s", "k", _folder(tmp_path / "b", {"x.bin": b"second", "y.bin": b"more"}))
    kept = store.fetch("s", "k")
    assert (kept / "x.bin").read_bytes() == b"first" and not (kept / "y.bin").exists()
    assert os.stat(kept / "x.bin").st_ino == before.st_ino  # never removed and put back
    assert sorted(p.name for p in (tmp_path / "store" / "s").iterdir()) == ["k"]


def test_concurrent_publishers_of_one_key_never_mix_their_files(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    sources = [_folder(tmp_path / f"src{i}", {f"part{j}.bin": bytes([i]) * 200_000 for j in range(5)}) for i in range(6)]
    start = threading.Barrier(len(sources))

    def publish(src):
        start.wait()
        store.publish("s", "k", src)

    threads = [threading.Thread(target=publish, args=(src,)) for src in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    artifact = store.fetch("s", "k")
    assert _matches_manifest(artifact)
    assert len({(artifact / f"part{j}.bin").read_bytes() for j in range(5)}) == 1  # all from one publisher
    assert sorted(p.name for p in (tmp_path / "store" / "s").iterdir()) == ["k"]


def test_an_incomplete_folder_under_the_key_is_replaced(tmp_path):
    store = ArtifactStore(str(tmp_path))
    _folder(tmp_path / "s" / "k", {"partial.bin": b"half"})
    store.publish("s", "k", _folder(tmp_path / "src", {"full.bin": b"whole"}))
    assert sorted(p.name for p in store.fetch("s", "k").iterdir()) == [MANIFEST, "full.bin"]


@pytest.mark.parametrize("damage", ["flip", "delete", "meta"])
def test_fetch_checks_every_file_against_the_manifest(tmp_path, damage):
    store = ArtifactStore(str(tmp_path))
    store.publish("s", "k", _folder(tmp_path / "src", {"a.bin": b"a" * 1000, "sub/b.bin": b"b" * 1000}), {"score": 0.5})
    store.fetch("s", "k")
    art = tmp_path / "s" / "k"
    if damage == "flip":
        data = bytearray((art / "sub" / "b.bin").read_bytes())
        data[10] ^= 0xFF
        (art / "sub" / "b.bin").write_bytes(bytes(data))
        expected = ("sub/b.bin", "does not match its sha256")
    elif damage == "delete":
        (art / "a.bin").unlink()
        expected = ("a.bin", "is missing")
    else:
        (art / MANIFEST).write_text((art / MANIFEST).read_text().replace("0.5", "0.9"))
        expected = (MANIFEST, "does not match its own digest")
    with pytest.raises(CorruptArtifactError) as err:
        store.fetch("s", "k")
    assert (err.value.file, err.value.uri) == (expected[0], store.uri("s", "k")) and expected[1] in str(err.value)


def test_verification_is_cached_per_process_until_a_file_changes(tmp_path, monkeypatch):
    store = ArtifactStore(str(tmp_path))
    store.publish("s", "k", _folder(tmp_path / "src", {"a.bin": b"a", "b.bin": b"b"}))
    hashed = []
    real = manifest_module.local_sha256
    monkeypatch.setattr(manifest_module, "local_sha256", lambda p: hashed.append(p) or real(p))
    store.fetch("s", "k")
    store.fetch("s", "k")
    assert len(hashed) == 2  # once per file
    (tmp_path / "s" / "k" / "a.bin").write_bytes(b"A")
    with pytest.raises(CorruptArtifactError):
        store.fetch("s", "k")


def test_run_cached_reports_a_corrupt_artifact_and_recomputes_it(tmp_path, caplog):
    store = ArtifactStore(str(tmp_path))
    calls = []

    def build(out):
        calls.append(1)
        (out / "weights.bin").write_bytes(b"\x01" * 4096)
        return {"n": 1}

    first = run_cached(store, "s", "thing", "k", build)
    (tmp_path / "s" / "k" / "weights.bin").write_bytes(b"\x01" * 4095 + b"\x02")
    with caplog.at_level(logging.WARNING, logger="muppet_core.artifacts"):
        second = run_cached(store, "s", "thing", "k", build)
    third = run_cached(store, "s", "thing", "k", build)
    assert (first.cache_hit, second.cache_hit, third.cache_hit, len(calls)) == (False, False, True, 2)
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "corrupt artifact s/thing (k)" in warning and "weights.bin" in warning and CORRUPT in warning
    assert (store.fetch("s", "k") / "weights.bin").read_bytes() == b"\x01" * 4096
    assert list((tmp_path / CORRUPT / "s").iterdir())  # the corrupt copy kept aside for inspection


def test_runs_needing_one_missing_key_build_it_once(tmp_path):
    store = ArtifactStore(str(tmp_path))
    calls, outputs = [], []
    start = threading.Barrier(3)

    def build(out):
        calls.append(1)
        time.sleep(0.3)
        (out / "result.txt").write_text("built once")

    def run():
        start.wait()
        outputs.append(run_cached(store, "s", "thing", "k", build))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and sorted(o.cache_hit for o in outputs) == [False, True, True]


def test_an_empty_artifact_is_never_published(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="with no files"):
        store.publish("s", "k", tmp_path / "empty")
    assert not store.has("s", "k")


def test_check_access_on_a_local_store_leaves_nothing(tmp_path):
    ArtifactStore(str(tmp_path / "store")).check_access()
    assert list((tmp_path / "store").iterdir()) == []


def test_check_access_names_the_store_it_cannot_use(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StoreError, match=f"cannot use the artifact store {tmp_path / 'file' / 'store'}"):
        ArtifactStore(str(tmp_path / "file" / "store")).check_access()


def test_transient_failures_are_retried_with_backoff_then_reported(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value-123")
    sleeps = []
    monkeypatch.setattr("muppet_core.artifacts.remote.time.sleep", sleeps.append)
    calls = []

    def flaky():
        calls.append(1)
        raise ConnectionResetError("reset by peer while sending very-secret-value-123\nsecond line")

    with pytest.raises(StoreError) as err:
        with_retries(flaky, "upload", "s3://b/store/s/k/x.bin", "s3://b/store", attempts=3, backoff_s=0.5)
    assert len(calls) == 3 and sleeps == [0.5, 1.0]
    assert str(err.value) == "could not upload s3://b/store/s/k/x.bin after 3 attempts: reset by peer while sending ***"
    outcomes = iter([ConnectionResetError("once"), "done"])

    def recovers():
        value = next(outcomes)
        if isinstance(value, Exception):
            raise value
        return value

    assert with_retries(recovers, "read", "u", "r", attempts=3, backoff_s=0) == "done"


def test_refusals_and_missing_objects_are_not_retried():
    assert not transient(FileNotFoundError("no such key")) and not transient(PermissionError("denied"))
    assert transient(OSError(5, "internal error")) and transient(TimeoutError())
    calls = []

    def refused():
        calls.append(1)
        raise PermissionError("The AWS Access Key Id you provided does not exist in our records.")

    with pytest.raises(StoreError) as err:
        with_retries(refused, "read", "s3://b/p/x", "s3://b/p", attempts=3, backoff_s=0)
    assert len(calls) == 1
    message = str(err.value)
    assert message.startswith("access to the artifact store s3://b/p was denied") and "AWS_SECRET_ACCESS_KEY" in message
    assert "\n" not in message
