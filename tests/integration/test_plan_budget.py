"""Every run publishes its plan before its first stage, and a run whose plan exceeds max_gpu_hours stops before any
work with one line."""

from __future__ import annotations

import asyncio

import pytest

from muppet_core.errors import OverBudgetError
from tests.integration.conftest import SMALL_TASKS, write_pipeline


def _artifacts(key: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))

    return asyncio.run(read())


def test_a_run_over_its_gpu_hours_stops_before_any_work_and_its_plan_is_published(prefect_harness, tiny_backbone, mirror, tmp_path):
    from flows.reproduce import reproduce

    config = write_pipeline(tmp_path / "pipelines.yaml", tiny_backbone, mirror, tmp_path / "store", seeds=[0], name="tiny_budget", tasks=SMALL_TASKS)
    with pytest.raises(OverBudgetError) as info:
        reproduce(pipeline="tiny_budget", config=str(config), max_gpu_hours=1e-12)
    line = str(info.value)
    assert "\n" not in line and line.startswith("pipeline 'tiny_budget': its plan needs ") and line.endswith(
        "GPU-hours on 1 x cpu, over max_gpu_hours 1e-12: nothing was run")
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("MANIFEST.json")), "no work was done"
    (plan,) = _artifacts("plan-tiny-budget")
    assert plan.type == "markdown" and plan.data.startswith("# Plan of `tiny_budget`: 1 x cpu")
    assert "| fine-tune | 4 fine-tunes (base 2, prefinetuned 2)" in plan.data  # sst2 and rte x 1 seed, base and pre-finetuned


def test_the_deployments_run_form_offers_max_gpu_hours_empty_by_default():
    from flows.deployments import build_deployments
    from tests.conftest import REPO

    (deployment,) = build_deployments(str(REPO / "pipelines.paper.yaml"), ["paper-large"])
    field = deployment._parameter_openapi_schema.properties["max_gpu_hours"]
    assert {"type": "number"} in field["anyOf"] and field["default"] is None and "plan" in field["description"]
    assert "max_gpu_hours" not in deployment.parameters  # no limit unless the run's form sets one
