"""The leaderboard as a researcher reads it: the CSV, the Markdown and the Prefect table artifact
hold the same numbers; the markdown artifact links the CSV and the chart; a failed fine-tune is a
missing cell with its reason, and the next run retries it."""

from __future__ import annotations

import io
import json
import math

import pandas as pd

from muppet_core.models.labels import backbone_label
from tests.integration.conftest import muppet, write_pipeline

MARKDOWN_TOLERANCE = 0.0005 + 1e-9  # the Markdown rounds ×100 to one decimal


def markdown_tables(md: str) -> dict[str, dict[str, float | None]]:
    """Every score table of a Markdown leaderboard, in its order: model (without the own-backbone
    mark) -> column -> value as a fraction (None for —); the ``computed`` column is left out."""
    rows, header = {}, None
    for line in md.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == "model":
            header = None if cells[1] == "benchmark" else [c.split(" (")[0] for c in cells]
        elif header and not cells[0].startswith("---"):
            rows[cells[0].removesuffix(" ◆")] = {
                h: None if c.startswith("—") else float(c.split()[0]) / 100 for h, c in zip(header[1:], cells[1:]) if h != "computed"
            }
    return rows


def same(a, b) -> bool:
    missing = lambda v: v is None or (isinstance(v, float) and math.isnan(v))  # noqa: E731
    if missing(a) or missing(b):
        return missing(a) and missing(b)
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-15)


def published(root) -> dict:
    """The leaderboard artifacts, by key, of the newest run of a pipeline named "tiny" whose store is
    under ``root``: artifact keys are global on the server, and other tests run pipelines of that name
    on stores of their own."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["leaderboard-tiny", "leaderboard-tiny-table"])), sort=ArtifactSort.CREATED_DESC,
        )
    ours = next(a for a in found if a.key == "leaderboard-tiny" and f"]({root / 'store'}/" in a.data)
    return {a.key: a for a in found if a.flow_run_id == ours.flow_run_id}


def test_csv_markdown_and_prefect_table_artifact_hold_the_same_numbers(first_run):
    root, config, _ = first_run
    csv = muppet("results", "tiny", "--config", str(config), "--format", "csv")
    assert csv.returncode == 0, csv.stderr
    table = pd.read_csv(io.StringIO(csv.stdout), index_col="model")
    artifact = published(root)["leaderboard-tiny-table"]
    assert artifact is not None and artifact.type == "table"
    rows = {r["model"]: r for r in (json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data)}
    assert list(rows) == list(table.index)
    compared = 0
    for model, row in rows.items():
        assert list(row) == ["model", *table.columns]
        for name in table.columns:
            assert same(table.loc[model, name], row[name]), (model, name, table.loc[model, name], row[name])
            compared += 1
    md = muppet("results", "tiny", "--config", str(config), "--format", "md").stdout
    md_rows = markdown_tables(md)
    columns = [c["name"] for c in json.loads((root / "store" / "pipelines" / "tiny" / "leaderboard.json").read_text())["columns"]]
    assert columns == ["sst2", "rte", "avg.classification", "average"]
    assert sorted(md_rows) == sorted(table.index)  # the Markdown ranks rows by their average
    for model, cells in md_rows.items():
        assert list(cells) == columns
        for name, value in cells.items():
            ours = table.loc[model, name]
            assert (value is None) == math.isnan(ours) and (value is None or abs(value - ours) <= MARKDOWN_TOLERANCE), (model, name)
    assert compared >= 3 * 15


def test_markdown_artifact_links_the_csv_and_the_chart_in_the_store(first_run):
    root, _, _ = first_run
    artifact = published(root)["leaderboard-tiny"]
    assert artifact is not None and artifact.type == "markdown"
    board = json.loads((root / "store" / "pipelines" / "tiny" / "leaderboard.json").read_text())
    for name in ("csv", "chart"):
        assert f"]({board['links'][name]})" in artifact.data
    chart = board["links"]["chart"]
    assert chart.endswith(".png") and open(chart, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert (root / "store" / "pipelines" / "tiny" / "leaderboard.png").read_bytes() == open(chart, "rb").read()


def test_a_failed_fine_tune_is_a_missing_cell_with_its_reason_and_the_next_run_retries_it(prefect_harness, tiny_backbone, mirror, monkeypatch, tmp_path):
    import muppet_core.training.finetune as finetune_module
    from flows.reproduce import reproduce

    root = tmp_path  # a store of its own: the runs it fails must not be found finished in another pipeline's store
    config = write_pipeline(root / "fail.yaml", tiny_backbone, mirror, root / "store", seeds=[0], name="tiny-fail", prefinetune=False)
    real = finetune_module.finetune

    def flaky(run, *args, **kwargs):
        if run.benchmark == "rte":
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(run, *args, **kwargs)

    monkeypatch.setattr(finetune_module, "finetune", flaky)
    reproduce(pipeline="tiny-fail", config=str(config))
    base = f"{backbone_label(tiny_backbone)} / base"
    csv = muppet("results", "tiny-fail", "--config", str(config), "--format", "csv")
    row = pd.read_csv(io.StringIO(csv.stdout), index_col="model").loc[base]
    assert math.isnan(row["rte"]) and row["rte.n"] == 0 and row["rte.failed"] == 1
    assert row["rte.note"] == "1 of 1 runs failed: RuntimeError: CUDA out of memory (simulated)"
    assert math.isnan(row["average"]) and 0.0 <= row["sst2"] <= 1.0
    md = muppet("results", "tiny-fail", "--config", str(config), "--format", "md").stdout
    assert markdown_tables(md)[base]["rte"] is None
    assert f"{base}, rte: 1 of 1 runs failed: RuntimeError: CUDA out of memory (simulated)" in md
    failures = list((root / "store" / "failures" / "finetune").glob("*.json"))
    assert [json.loads(p.read_text())["status"] for p in failures] == ["failed"]
    assert not (root / "store" / "finetune" / failures[0].stem).exists()  # not cached as a success

    monkeypatch.undo()
    reproduce(pipeline="tiny-fail", config=str(config))
    assert (root / "store" / "finetune" / failures[0].stem / "record.json").is_file()  # retried
    history = muppet("results", "tiny-fail", "--config", str(config), "--history", "--format", "csv")
    runs = pd.read_csv(io.StringIO(history.stdout))
    assert list(runs["model"]) == [base, base]
    assert math.isnan(runs["rte"][0]) and 0.0 <= runs["rte"][1] <= 1.0 and runs["sst2"][0] == runs["sst2"][1]
