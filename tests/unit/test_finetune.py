"""One fine-tune run: multiple-choice evaluation and seed determinism, on a tiny random BERT."""

from muppet_core.config import FinetuneConfig
from muppet_core.data.prepare import prepare_task
from muppet_core.tasks.catalog import get_task
from muppet_core.training.finetune import finetune

IDENTITY = {"pipeline": "unit", "variant": "base", "variant_key": "k"}


def test_multiple_choice_benchmark_is_fine_tuned_deterministically(tiny_backbone, mirror, tmp_path):
    prepare_task(get_task("arc_easy"), mirror, 0.1, 0, tmp_path)
    config = FinetuneConfig(benchmarks=["arc_easy"], batch_size=8, max_length=48, max_train_examples=24, max_eval_examples=30)
    first = finetune("arc_easy", tiny_backbone, tmp_path, config, 0, IDENTITY)
    again = finetune("arc_easy", tiny_backbone, tmp_path, config, 0, IDENTITY)
    assert first.main_metric == "accuracy" and 0.0 <= first.score <= 1.0
    assert (first.train_examples, first.eval_examples, first.examples_seen) == (24, 30, 24)
    assert first.metrics == again.metrics
