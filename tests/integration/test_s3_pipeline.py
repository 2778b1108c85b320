"""The tiny pipeline with its store on s3:// (SeaweedFS on loopback, enforcing credentials): a first
run computes every stage into the bucket, a second is served from it, and refused credentials
stop a run with one clear line before anything is written."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from muppet_core.artifacts.store import MANIFEST, ArtifactStore
from tests.conftest import REPO
from tests.integration.conftest import BENCHMARKS, SMALL_TASKS, write_pipeline
from tests.servers.seaweed import BUCKET

STORE = f"s3://{BUCKET}/pipeline-store"


def objects(seaweed, root: str) -> dict[str, tuple]:
    """Every object under a store root with its ETag and modification time (empty folders left out)."""
    found = seaweed.fs().find(root.removeprefix("s3://"), detail=True)
    return {p: (i.get("ETag"), i.get("LastModified")) for p, i in found.items() if i["type"] == "file" and not p.endswith("/")}


def artifacts(listing: dict[str, tuple]) -> dict[str, tuple]:
    """The manifests among them: one per complete artifact (``stage/key``)."""
    return {p.rsplit("/", 3)[-3] + "/" + p.rsplit("/", 3)[-2]: v for p, v in listing.items() if p.endswith(f"/{MANIFEST}")}


@pytest.fixture(scope="module")
def s3_runs(prefect_harness, tiny_backbone, mirror, seaweed, tmp_path_factory):
    """The tiny pipeline run twice on the s3 store: (store, first listing, second listing, CSVs,
    publishes during the second run)."""
    from flows.reproduce import reproduce

    root = tmp_path_factory.mktemp("s3-pipeline")
    config = write_pipeline(root / "pipelines.yaml", tiny_backbone, mirror, STORE, seeds=[0], tasks=SMALL_TASKS)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MUPPET_STORE", raising=False)
        mp.setenv("MUPPET_CACHE", str(root / "cache"))
        store = ArtifactStore(STORE)
        first_uri = reproduce(pipeline="tiny", config=str(config))
        first = objects(seaweed, STORE)
        first_csv = store.read_text("pipelines/tiny/leaderboard.csv")
        published = []
        real_publish = ArtifactStore.publish
        mp.setattr(ArtifactStore, "publish", lambda self, *a, **kw: published.append(a[:2]) or real_publish(self, *a, **kw))
        second_uri = reproduce(pipeline="tiny", config=str(config))
        second = objects(seaweed, STORE)
        second_csv = store.read_text("pipelines/tiny/leaderboard.csv")
    assert first_uri == second_uri == f"{STORE}/pipelines/tiny/leaderboard.csv"
    return store, first, second, (first_csv, second_csv), published


def test_the_first_run_stores_every_stage_in_the_bucket(s3_runs):
    store, first, _, _, _ = s3_runs
    stages = sorted(a.split("/")[0] for a in artifacts(first))
    runs = 2 * len(BENCHMARKS)  # base and prefinetuned, one seed
    assert stages == sorted(["data"] * (len(SMALL_TASKS) + len(BENCHMARKS)) + ["finetune"] * runs + ["leaderboard", "prefinetune"])
    for artifact in artifacts(first):  # every file as its manifest says
        stage, key = artifact.split("/")
        store.fetch(stage, key)


def test_a_second_run_is_served_from_the_bucket(s3_runs):
    _, first, second, (first_csv, second_csv), published = s3_runs
    assert published == []  # every stage a cache hit
    assert artifacts(second) == artifacts(first)  # no new artifact, no manifest rewritten
    assert {p: v for p, v in second.items() if "/pipelines/" not in p} == {p: v for p, v in first.items() if "/pipelines/" not in p}
    assert second_csv == first_csv and ",base," in first_csv and ",prefinetuned," in first_csv


def test_refused_credentials_stop_the_run_in_one_line_and_write_nothing(seaweed, tiny_backbone, mirror, tmp_path):
    store = f"s3://{BUCKET}/denied-store"
    config = write_pipeline(tmp_path / "pipelines.yaml", tiny_backbone, mirror, store, seeds=[0])
    env = {k: v for k, v in os.environ.items() if k not in ("MUPPET_STORE", "PREFECT_API_URL")}
    env.update(seaweed.env(secret="not-the-secret-of-muppet"), PREFECT_HOME=str(tmp_path / "prefect"), MUPPET_CACHE=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, "-m", "flows.cli", "run", "tiny", "--config", str(config)],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=300, check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("muppet: error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert errors[0].startswith(f"muppet: error: access to the artifact store {store} was denied")
    assert "AWS_ACCESS_KEY_ID" in errors[0] and "AWS_SECRET_ACCESS_KEY" in errors[0]
    assert "not-the-secret-of-muppet" not in result.stdout + result.stderr
    assert objects(seaweed, store) == {}
