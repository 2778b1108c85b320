"""pipelines.paper.yaml: the paper's pipelines validate offline, through the `muppet` command, and hold the paper's setup."""

from __future__ import annotations

import os
import subprocess
import sys

from muppet_core.pipelines import load_validated
from muppet_core.tasks.catalog import load_catalog
from tests.conftest import REPO

PAPER_FILE = REPO / "pipelines.paper.yaml"


def test_muppet_validate_accepts_the_paper_pipelines_offline():
    # A closed port as the hub: validating must not fetch a hub id (a fetch would fail on it, and the hub is not reachable here).
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0", "MUPPET_DATA_MIRROR": ""}
    done = subprocess.run([sys.executable, "-m", "flows.cli", "validate", str(PAPER_FILE)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{PAPER_FILE}: OK (3 pipelines: paper-bart, paper-base, paper-large)"


def test_the_paper_pipelines_hold_the_papers_setup():
    pipelines = load_validated(PAPER_FILE).pipelines
    assert {n: p.backbone for n, p in pipelines.items()} == {
        "paper-base": "roberta-base", "paper-large": "roberta-large", "paper-bart": "facebook/bart-large"}
    families = {n: s.family for n, s in load_catalog().items()}
    for name, pipe in pipelines.items():
        pre = pipe.prefinetune
        mix = {families[t] for t in pre.tasks}
        assert {"classification", "regression", "multiple_choice", "span"} <= mix, name
        assert ("summarization" in mix) == (name == "paper-bart"), name
        assert len(pre.tasks) >= 45 and len(set(pre.tasks)) == len(pre.tasks), name
        # 8 nodes x 8 GPUs, one task per GPU per update, loss scaling, bf16 under a ZeRO stage, checkpoints
        assert (pre.nnodes * pre.nproc_per_node, pre.tasks_per_step) == (64, 64), name
        assert pre.loss_scaling and pre.schedule == "heterogeneous" and pre.sampling == "proportional", name
        assert (pre.engine, pre.precision, pre.zero_stage > 0, pre.checkpoint_every is not None) == ("deepspeed", "bf16", True, True), name
        ft = pipe.finetune
        assert {"mnli", "rte", "boolq", "commonsenseqa", "squad"} <= set(ft.benchmarks), name
        assert len(ft.seeds) > 1 and len(ft.learning_rates) > 1, name
        assert ({families[b] for b in ft.benchmarks} >= {"summarization"}) == (name == "paper-bart"), name


def test_every_unverified_value_is_marked_so():
    text = PAPER_FILE.read_text()
    for line in text.splitlines():
        if line.strip().startswith(("steps:", "micro_batch_size:", "learning_rate:", "seeds:", "learning_rates:", "epochs:")):
            assert "not verified" in line, line


def test_the_readme_names_the_paper_pipelines_file():
    assert "pipelines.paper.yaml" in (REPO / "README.md").read_text()
