"""The content-addressed store: keys, manifests, incomplete artifacts, named files."""

import json

from muppet_core.artifacts.stage import run_cached
from muppet_core.artifacts.store import MANIFEST, ArtifactStore, code_version


def test_keys_hash_every_input_in_any_order():
    assert ArtifactStore.key("s", a=1, b={"x": [1, 2]}) == ArtifactStore.key("s", b={"x": [1, 2]}, a=1)
    assert ArtifactStore.key("s", a=1) != ArtifactStore.key("s", a=2) != ArtifactStore.key("t", a=2)


def test_publish_writes_manifest_last_and_fetch_reads_back(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("hello")
    (src / "sub" / "b.bin").write_bytes(b"\x00\x01")
    assert not store.has("stage", "k1")
    store.publish("stage", "k1", src, {"note": 1})
    assert store.has("stage", "k1")
    manifest = json.loads((store.fetch("stage", "k1") / MANIFEST).read_text())
    assert set(manifest["files"]) == {"a.txt", "sub/b.bin"} and manifest["meta"] == {"note": 1}
    assert (store.fetch("stage", "k1") / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    assert not list((tmp_path / "store" / "stage").glob("*.tmp-*"))


def test_artifact_without_manifest_is_absent_and_rebuilt(tmp_path):
    store = ArtifactStore(str(tmp_path))
    (tmp_path / "stage" / "k").mkdir(parents=True)
    (tmp_path / "stage" / "k" / "partial.txt").write_text("half")
    calls = []

    def build(out):
        calls.append(1)
        (out / "full.txt").write_text("whole")

    first = run_cached(store, "stage", "thing", "k", build)
    second = run_cached(store, "stage", "thing", "k", build)
    assert (first.cache_hit, second.cache_hit, len(calls)) == (False, True, 1)
    assert sorted(p.name for p in store.fetch("stage", "k").iterdir()) == [MANIFEST, "full.txt"]


def test_code_version_tracks_source():
    assert code_version("muppet_core.data") == code_version("muppet_core.data")
    assert code_version("muppet_core.data") != code_version("muppet_core.leaderboard")
