"""Hub datasets through the data stage, from the loopback hub (``tests/servers/hub.py``) with the real
``huggingface_hub`` and ``datasets`` (``HF_ENDPOINT``): the same records as the mirror's, the commit
sha they were read at in the key and the manifest, a pinned revision downloaded as pinned (the request
log says so), and a gated, missing or briefly failing hub as one line. Each load runs in a fresh
process, as a run reads the Hugging Face settings when it starts."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import DataConfig
from muppet_core.data.prepare import load_split
from muppet_core.data.stage import data_stage
from tests.conftest import REPO
from tests.servers.hub import Hub

HUB_ID = "aps/super_glue"
LABELS = ["entailment", "not_entailment"]
STAGE = """
import json, sys
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import DataConfig
from muppet_core.data.stage import data_stage
from muppet_core.errors import MuppetError
store = ArtifactStore(sys.argv[2])
try:
    out = data_stage(sys.argv[1], DataConfig(mirror=sys.argv[3]), store)
except MuppetError as exc:
    print(json.dumps({"error": str(exc)}))
else:
    print(json.dumps({"key": out.key, "dir": str(store.fetch("data", out.key)), "meta": store.manifest("data", out.key)["meta"]}))
"""


def parquet(rows: list[dict]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


def rte_repo(mirror: str, rows_per_split: int | None = None) -> dict[str, bytes]:
    """RTE as aps/super_glue holds it: a README whose ``configs`` name each config's parquet files,
    and ``rte/<split>-00000-of-00001.parquet`` with the hub's columns (premise, hypothesis, idx, label
    as a class index), built from the mirror's jsonl files."""
    files = {}
    for ours, theirs in (("train", "train"), ("val", "validation")):
        rows = [json.loads(line) for line in open(f"{mirror}/rte/{ours}.jsonl", encoding="utf-8")][:rows_per_split]
        files[f"rte/{theirs}-00000-of-00001.parquet"] = parquet(
            [{"premise": r["premise"], "hypothesis": r["hypothesis"], "idx": r["idx"], "label": LABELS.index(r["label"])} for r in rows])
    card = {"configs": [{"config_name": "rte", "data_files": [{"split": s, "path": f"rte/{s}-*"} for s in ("train", "validation")]}]}
    return {"README.md": f"---\n{yaml.safe_dump(card)}---\n".encode(), **files}


def run_stage(tmp_path, hub: Hub, task: str = "rte", catalog=None, **env: str) -> dict:
    """``data_stage(task)`` in a new process against ``hub``, with an empty mirror: the key, the
    artifact's folder and its manifest's metadata, or the one-line error."""
    (tmp_path / "empty-mirror").mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "MUPPET_CATALOG"))}
    extra = {"MUPPET_CATALOG": str(catalog)} if catalog else {}
    done = subprocess.run([sys.executable, "-c", STAGE, task, str(tmp_path / "store"), str(tmp_path / "empty-mirror")],
                          capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**base, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"), **extra, **env})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def pinned_catalog(folder, sha: str):
    """A catalog folder with ``rte_pinned``: RTE from the hub only, pinned to ``sha``."""
    folder.mkdir(exist_ok=True)
    entry = {"family": "classification", "labels": LABELS, "metric": "accuracy",
             "hub": {"path": HUB_ID, "name": "rte", "revision": sha, "fields": {"text_a": "premise", "text_b": "hypothesis", "label": "label"}}}
    (folder / "pinned.yaml").write_text(yaml.safe_dump({"tasks": {"rte_pinned": entry}}))
    return folder


def test_rte_from_the_hub_is_the_mirror_s_record_for_record_and_keyed_by_its_commit(mirror, tmp_path):
    with Hub() as hub:
        sha = hub.push("dataset", HUB_ID, rte_repo(mirror))
        got = run_stage(tmp_path, hub)
    assert got["meta"]["hub"] == {"path": HUB_ID, "name": "rte", "revision": sha}
    assert got["meta"]["stats"]["source"] == "hub" and got["meta"]["stats"]["revision"] == sha
    from_mirror = data_stage("rte", DataConfig(mirror=mirror), ArtifactStore(str(tmp_path / "mirror-store")))
    mirrored = ArtifactStore(str(tmp_path / "mirror-store")).fetch("data", from_mirror.key)
    for split in ("train", "validation"):
        hub_rows = [(r.text_a, r.text_b, r.label) for r in load_split(got["dir"], "classification", split)]
        mirror_rows = [(r.text_a, r.text_b, r.label) for r in load_split(mirrored, "classification", split)]
        assert hub_rows == mirror_rows and len(hub_rows) > 200, split
    assert got["key"] != from_mirror.key

    offline = run_stage(tmp_path / "offline", hub, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf-home"))
    assert offline["key"] == got["key"] and offline["meta"]["hub"]["revision"] == sha  # the warm cache, at the sha resolved last


def test_a_pinned_revision_is_the_one_downloaded_and_a_new_commit_is_a_new_key(mirror, tmp_path):
    with Hub() as hub:
        first = hub.push("dataset", HUB_ID, rte_repo(mirror, rows_per_split=40))
        latest = hub.push("dataset", HUB_ID, rte_repo(mirror, rows_per_split=60))
        catalog = pinned_catalog(tmp_path / "catalog", first)
        start = len(hub.served)
        pinned = run_stage(tmp_path, hub, "rte_pinned", catalog)
        log = hub.lines(start)
        current = run_stage(tmp_path, hub, "rte")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        resolved = subprocess.run([sys.executable, "-m", "flows.cli", "tasks", "show", "rte", "--resolve"], capture_output=True, text=True,
                                  cwd=REPO, env={**env, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home")}, timeout=120)
    assert resolved.stdout.splitlines()[-1] == f"# hub {HUB_ID} at main is now commit {latest}", resolved.stdout + resolved.stderr
    print("request log of the pinned download:\n" + "\n".join(log))
    shown = subprocess.run([sys.executable, "-m", "flows.cli", "tasks", "show", "rte_pinned"], capture_output=True, text=True, cwd=REPO,
                           env={**os.environ, "MUPPET_CATALOG": str(catalog)}, timeout=120)
    assert f"revision: {first}" in shown.stdout, shown.stdout + shown.stderr
    assert pinned["meta"]["hub"]["revision"] == first and pinned["meta"]["stats"]["rows"]["train"] + pinned["meta"]["stats"]["rows"].get("validation", 0) == 80
    assert current["meta"]["hub"]["revision"] == latest and current["key"] != pinned["key"]
    reads = [line for line in log if "/resolve/" in line or "/tree/" in line]
    assert reads and all(first in line for line in reads)  # every file read at the pinned commit
    assert any(line.startswith(f"GET /datasets/{HUB_ID}/resolve/{first}/rte/train-00000-of-00001.parquet -> 200") for line in log)
    assert not any(latest in line for line in log)


@pytest.mark.parametrize("case", ["gated", "missing"])
def test_a_gated_or_missing_dataset_is_one_line(mirror, tmp_path, case):
    with Hub() as hub:
        if case == "gated":
            hub.push("dataset", HUB_ID, rte_repo(mirror, rows_per_split=10))
            hub.gate("dataset", HUB_ID)
        got = run_stage(tmp_path, hub)
    message = got["error"]
    assert "\n" not in message and message.startswith("dataset 'rte' is not in the data mirror")
    assert ("gated or private (401)" if case == "gated" else "no such repository, or a private one (404)") in message, message
    print(message)


def test_a_5xx_once_on_a_file_is_retried_and_the_data_arrives(mirror, tmp_path):
    with Hub() as hub:
        sha = hub.push("dataset", HUB_ID, rte_repo(mirror, rows_per_split=20))
        hub.fail_once("/resolve/")
        got = run_stage(tmp_path, hub)
    assert any(s.status == 503 for s in hub.served)
    assert got.get("meta", {}).get("hub", {}).get("revision") == sha, got
