"""The store on s3:// against a real S3 server (SeaweedFS on loopback, tests/servers/seaweed.py):
transfers in bounded memory, failed publishes retried then cleaned up, checksums checked on
download, refused credentials reported in one line."""

from __future__ import annotations

import os
import shutil
import tracemalloc

import pytest

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.errors import CorruptArtifactError, StoreError
from tests.servers.seaweed import BUCKET


@pytest.fixture
def store(seaweed, tmp_path, request) -> ArtifactStore:
    return ArtifactStore(f"s3://{BUCKET}/{request.node.name}", cache_dir=str(tmp_path / "cache"), options={"backoff_s": 0.05})


def _objects(seaweed, store: ArtifactStore) -> list[str]:
    """The objects under the store's root (SeaweedFS keeps empty folders; they hold nothing)."""
    found = seaweed.fs().find(store.root.removeprefix("s3://"), detail=True)
    return sorted(path for path, info in found.items() if info["type"] == "file" and not path.endswith("/"))


def test_large_files_move_in_parts_never_whole_in_memory(store, tmp_path):
    store = ArtifactStore(store.root, str(store.cache_dir), options={"chunk_bytes": 5 << 20, "max_concurrency": 1, "backoff_s": 0.05})
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "big.bin", "wb") as fh:
        fh.writelines(os.urandom(4 << 20) for _ in range(6))  # 24 MiB
    store.has("warm", "up")  # the client's own allocations are not the transfer's
    tracemalloc.start()
    try:
        store.publish("s", "k", src)
        upload_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        local = store.fetch("s", "k")
        download_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (local / "big.bin").read_bytes() == (src / "big.bin").read_bytes()
    assert upload_peak < 16 << 20 and download_peak < 16 << 20, (upload_peak >> 20, download_peak >> 20)


def test_a_publish_that_keeps_failing_is_retried_then_cleaned_up(seaweed, store, tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.bin", "b.bin", "c.bin"):
        (src / name).write_bytes(name.encode() * 1000)
    real, calls = store.backend.fs.put_file, []

    def put_file(lpath, rpath, **kw):
        calls.append(rpath)
        if rpath.endswith("b.bin"):
            raise ConnectionResetError("connection reset by peer")
        return real(lpath, rpath, **kw)

    monkeypatch.setattr(store.backend.fs, "put_file", put_file)
    with pytest.raises(StoreError) as err:
        store.publish("s", "k", src)
    assert str(err.value) == f"could not upload {store.uri('s', 'k')}/b.bin after 3 attempts: connection reset by peer"
    assert [c.rsplit("/", 1)[1] for c in calls] == ["a.bin", "b.bin", "b.bin", "b.bin"]
    assert not store.has("s", "k") and _objects(seaweed, store) == []  # a.bin deleted again


def test_a_transient_failure_is_retried_and_the_publish_completes(store, tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(b"payload")
    real, failures = store.backend.fs.put_file, [ConnectionResetError("reset once")]

    def put_file(lpath, rpath, **kw):
        if failures:
            raise failures.pop()
        return real(lpath, rpath, **kw)

    monkeypatch.setattr(store.backend.fs, "put_file", put_file)
    store.publish("s", "k", src)
    assert (store.fetch("s", "k") / "a.bin").read_bytes() == b"payload"


def test_downloads_are_checked_and_a_damaged_local_copy_is_fetched_again(seaweed, store, tmp_path, caplog):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(b"\x00" * 5000)
    store.publish("s", "k", src)
    local = store.fetch("s", "k")
    (local / "a.bin").write_bytes(b"\x00" * 4999 + b"\x01")
    assert (store.fetch("s", "k") / "a.bin").read_bytes() == b"\x00" * 5000
    assert "the local copy of " + store.uri("s", "k") + " is damaged" in caplog.text
    seaweed.fs().pipe(f"{store.root.removeprefix('s3://')}/s/k/a.bin", b"\x00" * 4999 + b"\x01")
    shutil.rmtree(store.cache_dir)
    with pytest.raises(CorruptArtifactError) as err:
        store.fetch("s", "k")
    assert err.value.file == "a.bin" and err.value.uri == store.uri("s", "k")
    assert not list(store.cache_dir.glob("s/*"))  # nothing unverified left in the cache


def test_refused_credentials_fail_the_access_check_in_one_line(seaweed, store, monkeypatch):
    import s3fs

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-for-muppet")
    s3fs.S3FileSystem.clear_instance_cache()
    bad = ArtifactStore(store.root)
    with pytest.raises(StoreError) as err:
        bad.check_access()
    message = str(err.value)
    assert message.startswith(f"access to the artifact store {store.root} was denied")
    assert "AWS_ACCESS_KEY_ID" in message and "AWS_SECRET_ACCESS_KEY" in message and "\n" not in message
    assert "wrong-secret-for-muppet" not in message
    monkeypatch.undo()
    s3fs.S3FileSystem.clear_instance_cache()
    assert _objects(seaweed, store) == []
    store.check_access()  # the right credentials pass, leaving nothing either
    assert _objects(seaweed, store) == []


def test_the_s3_lock_excludes_a_second_holder_and_frees_a_dead_ones(seaweed, store):
    import threading
    import time

    from muppet_core.artifacts.s3 import LOCKS, lock_body
    from muppet_core.leaderboard.kept import index_lock

    options = {"lock_stale_s": 1.0, "lock_poll_s": 0.05}
    machine_a, machine_b = (ArtifactStore(store.root, options=options) for _ in range(2))
    order: list[str] = []

    def second() -> None:
        with index_lock(machine_b, "demo"):
            order.append("b holds")

    with index_lock(machine_a, "demo"):
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(2.5)  # more than lock_stale_s: a live holder's refreshes keep the waiter out
        order.append("a releases")
    waiter.join(30)
    assert order == ["a releases", "b holds"]
    assert _objects(seaweed, store) == []  # released: no lock object left

    dead = f"{store.root.removeprefix('s3://')}/{LOCKS}/kept/demo.lock"
    seaweed.fs().pipe(dead, lock_body("a-holder-that-died", 0))  # never refreshed, never deleted
    started = time.monotonic()
    with index_lock(machine_b, "demo"):
        waited = time.monotonic() - started
    assert 1.0 <= waited < 10 and _objects(seaweed, store) == []


def test_a_server_without_conditional_writes_stops_the_lock_in_one_line(store, monkeypatch):
    """A server that answers the lock's conditional PUT with 501 Not Implemented (as S3 servers
    without If-None-Match do) stops the locked work with one line saying what the lock needs."""
    from botocore.exceptions import ClientError
    from s3fs.errors import translate_boto_error

    from muppet_core.leaderboard.kept import index_lock

    real = store.backend.fs.call_s3

    def no_conditional_writes(method, *args, **kwargs):
        if "IfNoneMatch" in kwargs:
            error = ClientError({"Error": {"Code": "NotImplemented", "Message": "A header you provided implies functionality "
                                           "that is not implemented"}, "ResponseMetadata": {"HTTPStatusCode": 501}}, "PutObject")
            raise translate_boto_error(error)
        return real(method, *args, **kwargs)

    monkeypatch.setattr(store.backend.fs, "call_s3", no_conditional_writes)
    with pytest.raises(StoreError) as err, index_lock(store, "demo"):
        pass
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"could not take the lock {store.root}/_scratch/.locks/kept/demo.lock: ")
    assert message.endswith("the store's lock needs an S3 server with conditional writes (PUT with If-None-Match), as AWS S3 and SeaweedFS have")
