"""A fine-tune that raises becomes a failure record, never a cached result, and is retried."""

from muppet_core.artifacts.stage import StageOutput
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import FinetuneConfig
from muppet_core.evaluation.results import read_result
from muppet_core.models.backbone import Variant
from muppet_core.stages import FINETUNE as STAGE, FINETUNE_FAILED as FAILED_STAGE
from muppet_core.training.finetune import FinetuneRun, finetune_stage


def test_a_failed_fine_tune_is_recorded_with_its_reason_and_not_cached(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    missing_data = StageOutput("data", "rte", "nosuchkey", store.uri("data", "nosuchkey"), False)
    config = FinetuneConfig(benchmarks=["rte"])
    planned = FinetuneRun(Variant("base", "vk", "/nonexistent"), "rte", 0, 3e-5)
    run = lambda: finetune_stage("p", planned, missing_data, config, store)  # noqa: E731
    output = run()
    assert output.stage == FAILED_STAGE and not output.cache_hit
    assert not store.has(STAGE, output.key)  # nothing published under the key: a re-run tries again
    record = read_result(store, output)
    assert record.status == "failed" and record.score is None and record.metrics == {}
    assert record.error.startswith("FileNotFoundError: artifact ") and "nosuchkey" in record.error
    assert (record.benchmark, record.variant, record.main_metric) == ("rte", "base", "accuracy")
    again = run()
    assert again.stage == FAILED_STAGE and again.key == output.key
