"""A watched hub backbone gets a new commit between two scheduled runs (issue 31): the second run
resolves main's new sha and computes only that revision's fine-tunes, the first revision's row
comes from the store unchanged, and the table holds both, each labelled by its commit. The runs
are `muppet run` in fresh processes against the loopback hub (``HF_ENDPOINT``), as a schedule starts them, reporting
to the session's Prefect server (the test is about the hub and the store, not about Prefect's temporary server)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pandas as pd
import pytest

from muppet_core.models.tiny import save_tiny_bert
from tests.conftest import REPO
from tests.integration.conftest import artifact_keys, write_pipeline
from tests.servers.hub import Hub

NAME = "tiny-hub"
REPO_ID = "org/tiny-bert"


def run(config, root, hub: Hub, *args: str) -> subprocess.CompletedProcess:
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PREFECT_API"))}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(root / "hf-home"), PREFECT_HOME=str(root / "prefect"), MUPPET_CACHE=str(root / "cache"),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_API_URL=PREFECT_API_URL.value())
    return subprocess.run([sys.executable, "-m", "flows.cli", *args, "--config", str(config)], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=600)


@pytest.mark.slow
def test_a_new_commit_of_a_watched_backbone_is_evaluated_and_the_old_row_stays(prefect_harness, tiny_backbone, mirror, tmp_path):
    config = write_pipeline(tmp_path / "pipelines.yaml", REPO_ID, mirror, tmp_path / "store", seeds=[0], name=NAME, prefinetune=False)
    with Hub() as hub:
        first = hub.push_folder("model", REPO_ID, tiny_backbone)
        done = run(config, tmp_path, hub, "run", NAME)
        assert done.returncode == 0, done.stderr[-3000:]
        before = {stage: artifact_keys(tmp_path / "store", stage) for stage in ("data", "finetune")}
        second = hub.push_folder("model", REPO_ID, save_tiny_bert(tmp_path / "retrained", seed=1))  # a team pushes a new checkpoint
        start = len(hub.served)
        again = run(config, tmp_path, hub, "run", NAME)
        log = hub.lines(start)
        assert again.returncode == 0, again.stderr[-3000:]
    after = {stage: artifact_keys(tmp_path / "store", stage) for stage in before}
    print("request log of the second run:\n" + "\n".join(log))
    print("\n".join(line for line in again.stderr.splitlines() if "cache hit" in line or "computed" in line or "cached" in line))
    old_row, new_row = f"tiny-bert@{first[:7]} / base", f"tiny-bert@{second[:7]} / base"
    assert f"{old_row}: cached (computed in run " in again.stderr and f"{new_row}: computed\n" in again.stderr
    assert [line for line in log if "/api/models/" in line][0] == f"GET /api/models/{REPO_ID}/revision/main -> 200"
    assert all(f"/resolve/{second}/" in line for line in log if "/resolve/" in line)
    # the first commit's artifacts are untouched, the new one's fine-tunes computed (its data is new too: its tokenizer measures it)
    for stage in before:
        assert {k: after[stage][k] for k in before[stage]} == before[stage], stage
    assert len(after["finetune"]) == 2 * len(before["finetune"])
    table = pd.read_csv(io.StringIO((tmp_path / "store" / "pipelines" / NAME / "leaderboard.csv").read_text()), index_col="model")
    assert sorted(table["backbone"]) == sorted([f"tiny-bert@{first[:7]}", f"tiny-bert@{second[:7]}"])
    assert table["run"].nunique() == 2
    assert table.loc[new_row, "own"] and not table.loc[old_row, "own"]  # the pipeline's backbone is its current commit
    md = (tmp_path / "store" / "pipelines" / NAME / "leaderboard.md").read_text()
    assert old_row in md and new_row in md
    with Hub() as offline:  # the history says which run brought each commit, and when
        history = run(config, tmp_path, offline, "results", NAME, "--history", "--format", "csv")
    seen = pd.read_csv(io.StringIO(history.stdout))
    assert list(seen["backbone"]) == [f"tiny-bert@{first[:7]}", f"tiny-bert@{second[:7]}"] and seen["time"].is_monotonic_increasing
