"""A hub-id backbone comes through its source from a hub endpoint on loopback (``HF_ENDPOINT``), then
from the warm cache alone (``HF_HUB_OFFLINE=1``), keyed by its hub id either way; without either it
is refused in one line. Each step runs in a fresh process, as a run reads the Hugging Face settings
when it starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from muppet_core.artifacts.store import digest
from muppet_core.models.sources import backbone_fingerprint
from tests.conftest import REPO
from tests.servers.hub import HubMirror

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
    print(json.dumps({"path": variant.encoder_path, "key": variant.key, "layers": encoder.config.num_hidden_layers}))
"""


def resolve_in_a_new_process(tmp_path, **env: str) -> dict:
    """What ``base_variant`` and ``load_encoder`` give for the hub id in a process started with ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_OFFLINE", "HF_ENDPOINT"))}
    done = subprocess.run([sys.executable, "-c", RESOLVE, REPO_ID, str(tmp_path / "cache")], capture_output=True, text=True, cwd=REPO,
                          env={**base, "HF_HOME": str(tmp_path / "hf-home"), **env}, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_hub_backbone_comes_from_the_endpoint_then_from_the_warm_cache(tiny_backbone, tmp_path):
    with HubMirror({REPO_ID: tiny_backbone}) as hub:
        fetched = resolve_in_a_new_process(tmp_path, HF_ENDPOINT=hub.url)
    assert any(path.endswith("/model.safetensors") for path in hub.requests)
    assert fetched["path"].startswith(str(tmp_path / "hf-home")) and fetched["layers"] == 2
    assert backbone_fingerprint(fetched["path"]) == backbone_fingerprint(tiny_backbone)  # the same files
    assert fetched["key"] == digest({"hub": REPO_ID})[:24]  # keyed by the hub id, as before sources were a registry

    cached = resolve_in_a_new_process(tmp_path, HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="1")  # the endpoint is gone
    assert cached == fetched

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
