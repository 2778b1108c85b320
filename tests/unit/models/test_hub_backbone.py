"""A hub-id backbone comes through its source from the loopback hub (``tests/servers/hub.py``,
``HF_ENDPOINT``), then from the warm cache alone (``HF_HUB_OFFLINE=1``), keyed by its hub id and the
commit sha downloaded either way; a new commit is a new key, ``org/name@<sha>`` downloads that commit
(the request log says so); gated, missing or without either it is refused in one line. Each step
runs in a fresh process, as a run reads the Hugging Face settings when it starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from muppet_core.artifacts.store import digest
from muppet_core.models.sources import backbone_fingerprint
from tests.conftest import REPO
from tests.servers.hub import Hub

REPO_ID = "org/tiny-bert"
RESOLVE = """
import json, sys
from pathlib import Path
from muppet_core.errors import BackboneError
from muppet_core.models.backbone import base_variant, load_encoder
try:
    variant = base_variant(sys.argv[1], Path(sys.argv[2]))
except BackboneError as exc:
    print(json.dumps({"error": str(exc)}))
else:
    encoder, tokenizer = load_encoder(variant.encoder_path)
    print(json.dumps({"path": variant.encoder_path, "key": variant.key, "backbone": variant.backbone, "layers": encoder.config.num_hidden_layers}))
"""


def resolve_in_a_new_process(tmp_path, spec: str = REPO_ID, **env: str) -> dict:
    """What ``base_variant`` and ``load_encoder`` give for the backbone ``spec`` in a process started with ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_OFFLINE", "HF_ENDPOINT"))}
    done = subprocess.run([sys.executable, "-c", RESOLVE, spec, str(tmp_path / "cache")], capture_output=True, text=True, cwd=REPO,
                          env={**base, "HF_HOME": str(tmp_path / "hf-home"), **env}, timeout=300)
    assert done.returncode == 0, done.stderr
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "stderr": done.stderr}


def test_a_hub_backbone_comes_from_the_endpoint_then_from_the_warm_cache(tiny_backbone, tmp_path):
    with Hub() as hub:
        sha = hub.push_folder("model", REPO_ID, tiny_backbone)
        fetched = resolve_in_a_new_process(tmp_path, HF_ENDPOINT=hub.url)
    assert any(line.startswith(f"GET /{REPO_ID}/resolve/{sha}/model.safetensors -> 200") for line in hub.lines())
    assert fetched["path"].startswith(str(tmp_path / "hf-home")) and fetched["layers"] == 2
    assert backbone_fingerprint(fetched["path"]) == backbone_fingerprint(tiny_backbone)  # the same files
    assert fetched["key"] == digest({"hub": REPO_ID, "revision": sha})[:24]  # the hub id at the commit downloaded
    assert fetched["backbone"] == f"{REPO_ID}@{sha}"

    cached = resolve_in_a_new_process(tmp_path, HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="1")  # the endpoint is gone
    assert {**cached, "stderr": ""} == {**fetched, "stderr": ""}  # the same commit, from the cache
    assert f"backbone {REPO_ID}: offline (HF_HUB_OFFLINE), using the revision the cache last resolved: {sha}" in cached["stderr"]

    cold = resolve_in_a_new_process(tmp_path / "cold", HF_HUB_OFFLINE="1")
    assert cold["error"].startswith(f"backbone '{REPO_ID}' could not be fetched from the hub: ") and "\n" not in cold["error"]


def test_a_hub_backbone_s_snapshot_is_named_by_its_hub_id_in_the_model_card(tmp_path):
    from muppet_core.models.sources import hub_id_of
    from muppet_core.training.export import base_metadata

    snapshot = tmp_path / "hub" / "models--org--tiny-bert" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    assert hub_id_of(str(snapshot)) == REPO_ID
    assert base_metadata(str(snapshot)) == {"base_model": REPO_ID}  # the card's base, as for the id itself
    assert hub_id_of(str(tmp_path)) is None and base_metadata(str(tmp_path)) == {}


def test_a_new_commit_is_a_new_key_and_a_pinned_revision_is_what_is_downloaded(tiny_backbone, tmp_path):
    from muppet_core.models.tiny import save_tiny_bert

    with Hub() as hub:
        first = hub.push_folder("model", REPO_ID, tiny_backbone)
        before = resolve_in_a_new_process(tmp_path, HF_ENDPOINT=hub.url)
        second = hub.push_folder("model", REPO_ID, save_tiny_bert(tmp_path / "retrained", seed=1))
        after = resolve_in_a_new_process(tmp_path, HF_ENDPOINT=hub.url)
        start = len(hub.served)
        pinned = resolve_in_a_new_process(tmp_path / "fresh", f"{REPO_ID}@{first[:10]}", HF_ENDPOINT=hub.url)
        log = hub.lines(start)
    assert before["backbone"] == f"{REPO_ID}@{first}" and after["backbone"] == f"{REPO_ID}@{second}"
    assert before["key"] != after["key"]  # the scheduled run's new checkpoint is not a cache hit
    assert pinned["key"] == before["key"] and pinned["backbone"] == f"{REPO_ID}@{first}" and "offline" not in pinned["stderr"]
    assert [line for line in log if "/api/models/" in line][0] == f"GET /api/models/{REPO_ID}/revision/{first[:10]} -> 200", log
    downloads = [line for line in log if "/resolve/" in line]
    assert downloads and all(f"/resolve/{first}/" in line for line in downloads)


def test_a_gated_or_missing_backbone_is_one_line(tiny_backbone, tmp_path):
    with Hub() as hub:
        hub.push_folder("model", REPO_ID, tiny_backbone)
        hub.push_folder("model", "org/open-bert", tiny_backbone)
        hub.gate("model", REPO_ID)
        gated = resolve_in_a_new_process(tmp_path, HF_ENDPOINT=hub.url)
        missing = resolve_in_a_new_process(tmp_path, "org/absent", HF_ENDPOINT=hub.url)
        unknown = resolve_in_a_new_process(tmp_path, "org/open-bert@v9", HF_ENDPOINT=hub.url)
    for got, spec, status in ((gated, REPO_ID, "gated or private (401)"), (missing, "org/absent", "no such repository"),
                              (unknown, "org/open-bert@v9", "no such revision (404)")):
        assert got["error"].startswith(f"backbone '{spec}' could not be fetched from the hub: ") and "\n" not in got["error"], got
        assert status in got["error"], got["error"]
        print(got["error"])


def save_wider_bert(path: Path, tokenizer_from: str) -> str:
    """A random 2-layer BERT of hidden size 128 (about 17 MB of safetensors: more than the 10 MB a
    download writes at a time, so a download killed midway leaves part of it on disk)."""
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256)).save_pretrained(path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(tokenizer_from) / name, path / name)
    return str(path)


def _size(path: Path) -> int:
    """A file's size, 0 once it is gone (a part file is renamed when its download ends)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def test_a_download_killed_midway_is_fetched_again_whole_and_identical(tiny_backbone, tmp_path):
    """huggingface_hub (2.x) downloads each file into a name unique to the process and does not reuse a
    dead process's part (its file_download.py: a shared ``.incomplete`` corrupted caches): the next
    run fetches the file again, whole, and the cache holds exactly the hub's files."""
    model = save_wider_bert(tmp_path / "wider", tiny_backbone)
    with Hub() as hub:
        sha = hub.push_folder("model", REPO_ID, model)
        hub.slow("model.safetensors", chunk=262144, pause=0.2)  # ~10 s for the weights: a busy machine still catches it midway
        base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_OFFLINE", "HF_ENDPOINT"))}
        env = {**base, "HF_HOME": str(tmp_path / "hf-home"), "HF_ENDPOINT": hub.url}
        download = subprocess.Popen([sys.executable, "-c", RESOLVE, REPO_ID, str(tmp_path / "cache")], cwd=REPO, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        blobs = tmp_path / "hf-home" / "hub" / "models--org--tiny-bert" / "blobs"
        deadline = time.monotonic() + 300
        while not any(_size(p) > 0 for p in blobs.glob("*.incomplete")) and time.monotonic() < deadline:
            time.sleep(0.02)
        download.send_signal(signal.SIGKILL)  # a download killed midway: part of the weights on disk
        download.wait(timeout=30)
        partial = max(p.stat().st_size for p in blobs.glob("*.incomplete"))
        size = (Path(model) / "model.safetensors").stat().st_size
        assert 0 < partial < size
        hub.slow("model.safetensors", 0)
        start = len(hub.served)
        again = resolve_in_a_new_process(tmp_path, HF_ENDPOINT=hub.url)
        log = hub.lines(start)
    print(f"killed at {partial} of {size} bytes; the next run's requests:\n" + "\n".join(log))
    assert f"GET /{REPO_ID}/resolve/{sha}/model.safetensors -> 200" in log
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        assert (Path(again["path"]) / name).read_bytes() == (Path(model) / name).read_bytes(), name


def test_a_connection_dropped_midway_is_resumed_with_a_range_request(tiny_backbone, tmp_path):
    model = save_wider_bert(tmp_path / "wider", tiny_backbone)
    with Hub() as hub:
        sha = hub.push_folder("model", REPO_ID, model)
        hub.cut_once("model.safetensors", 12_000_000)
        fetched = resolve_in_a_new_process(tmp_path, HF_ENDPOINT=hub.url)
    print("\n".join(hub.lines()))
    weights = [line for line in hub.lines() if line.startswith(f"GET /{REPO_ID}/resolve/{sha}/model.safetensors")]
    assert weights == [f"GET /{REPO_ID}/resolve/{sha}/model.safetensors -> 200",  # cut after 12 MB, 10 MB of it written
                       f"GET /{REPO_ID}/resolve/{sha}/model.safetensors -> 206 (bytes=10485760-)"], weights
    assert (Path(fetched["path"]) / "model.safetensors").read_bytes() == (Path(model) / "model.safetensors").read_bytes()


def test_a_5xx_once_is_retried_and_the_backbone_arrives(tiny_backbone, tmp_path):
    with Hub() as hub:
        sha = hub.push_folder("model", REPO_ID, tiny_backbone)
        hub.fail_once("/model.safetensors")
        fetched = resolve_in_a_new_process(tmp_path, HF_ENDPOINT=hub.url)
    weights = [line for line in hub.lines() if "/model.safetensors" in line]
    assert weights[0].endswith("-> 503") and weights[-1] == f"GET /{REPO_ID}/resolve/{sha}/model.safetensors -> 200", weights
    assert fetched["backbone"] == f"{REPO_ID}@{sha}" and fetched["layers"] == 2
