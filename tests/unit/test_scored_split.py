"""What a fine-tune scored: the official dev set where the mirror holds it, else exactly what was carved,
from the real mirror's rows up to the leaderboard."""

import pytest

from muppet_core.config import FinetuneConfig
from muppet_core.data.prepare import prepare_task
from muppet_core.data.splits import describe_scored
from muppet_core.leaderboard.aggregate import aggregate
from muppet_core.leaderboard.render import from_csv, to_csv, to_markdown
from muppet_core.models.backbone import Variant
from muppet_core.tasks.catalog import get_task
from muppet_core.training.finetune import FinetuneRun, finetune

OFFICIAL_DEV = {  # the official dev sets of the study's benchmarks, counted in the mirror's files
    "rte": ("rte/val.jsonl", 277), "cb": ("cb/val.jsonl", 56), "copa": ("copa/val.jsonl", 100), "wic": ("wic/val.jsonl", 638),
    "stsb": ("stsb/sts-dev.csv", 1500), "cola": ("cola/in_domain_dev.tsv, cola/out_of_domain_dev.tsv", 1043),
    "commonsenseqa": ("commonsenseqa/dev_rand_split.jsonl", 1221),
}


@pytest.mark.parametrize("benchmark", sorted(OFFICIAL_DEV))
def test_the_official_dev_set_is_scored_whole_where_the_mirror_holds_it(benchmark, mirror, tmp_path):
    stats = prepare_task(get_task(benchmark), mirror, 0.1, 0, tmp_path)
    files, rows = OFFICIAL_DEV[benchmark]
    assert stats["rows"]["validation"] == rows and "validation" not in stats["carved"]
    assert describe_scored(get_task(benchmark), stats, rows) == f"official validation split [{files}]: all {rows} scored"
    assert describe_scored(get_task(benchmark), stats, 50) == f"official validation split [{files}]: a seeded sample (seed 0) of 50 of {rows} scored"


def test_a_carve_is_never_called_official(mirror, tmp_path):
    mrpc = prepare_task(get_task("mrpc"), mirror, 0.1, 0, tmp_path / "mrpc")
    text = describe_scored(get_task("mrpc"), mrpc, mrpc["rows"]["validation"])
    assert text.startswith("carved 10% of train (seed 0) [mrpc/msr_paraphrase_train.txt]: all ")
    assert "GLUE's MRPC dev ids are not in the mirror" in text and "official validation" not in text


def test_a_fine_tune_records_what_it_scored_and_the_leaderboard_shows_it(tiny_backbone, mirror, tmp_path):
    prepare_task(get_task("wic"), mirror, 0.1, 0, tmp_path / "wic")
    prepare_task(get_task("boolq"), mirror, 0.1, 0, tmp_path / "boolq")
    config = FinetuneConfig(benchmarks=["wic", "boolq"], batch_size=8, max_length=32, max_train_examples=16)
    base = Variant("base", "k", tiny_backbone, backbone="tiny")
    wic = finetune(FinetuneRun(base, "wic", 0, 3e-5), tmp_path / "wic", config, "unit")
    assert wic.eval_examples == 638 and wic.eval_split == "official validation split [wic/val.jsonl]: all 638 scored"
    # BoolQ's train is not in the mirror: its 3,270 official questions are split 90/10, and only the carved tenth is scored
    boolq = finetune(FinetuneRun(base, "boolq", 0, 3e-5), tmp_path / "boolq", config, "unit")
    assert boolq.eval_examples == 338 and boolq.eval_split.startswith("carved 10% of validation (seed 0) [boolq/val.jsonl]: all 338 scored; ")
    assert "official 3,270-question dev set" in boolq.eval_split
    capped = finetune(FinetuneRun(base, "wic", 0, 3e-5), tmp_path / "wic", config.model_copy(update={"max_eval_examples": 100}), "unit")
    assert capped.eval_split == "official validation split [wic/val.jsonl]: a seeded sample (seed 0) of 100 of 638 scored"
    board = aggregate([wic, boolq], ["wic", "boolq"], "unit")
    table = from_csv(to_csv(board))
    assert table.loc["tiny / base", "wic.scored"] == wic.eval_split and table.loc["tiny / base", "boolq.scored"] == boolq.eval_split
    assert f"- wic: {wic.eval_split}" in to_markdown(board)
