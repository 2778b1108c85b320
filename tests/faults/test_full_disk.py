"""A store that fills up in the middle of a fine-tune (issue 29), on a small tmpfs mounted for the
test: a result that cannot be published becomes a failure record while that still fits; once not
even that fits, the run stops with one line naming the store and its space. Nothing published
before is lost: every artifact still matches its manifest and the leaderboard's files are intact."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.callbacks import Callback, CallbackSpec
from muppet_core.config import DataConfig, FinetuneConfig
from muppet_core.data.stage import data_stage
from muppet_core.errors import StoreError
from muppet_core.evaluation.results import read_result
from muppet_core.leaderboard.stage import leaderboard_stage
from muppet_core.models.backbone import Variant
from muppet_core.stages import FINETUNE_FAILED
from muppet_core.training.finetune import FinetuneRun, finetune_stage

SIZE = "4m"


class FillStore(Callback):
    """At the end of update 1, fill the filesystem of ``store`` until ``leave`` blocks are free."""

    def __init__(self, store: str, leave: int):
        self.store, self.leave = Path(store), leave

    def on_step_end(self, step: int, logs: dict) -> None:
        if step == 0:
            stat = os.statvfs(self.store)
            with open(self.store / "filler", "ab") as fh:
                fh.write(b"\0" * max(0, stat.f_bavail - self.leave) * stat.f_frsize)


def fill_at_update_1(store: Path, leave: int) -> CallbackSpec:
    return CallbackSpec(target=f"{__name__}:FillStore", options={"store": str(store), "leave": leave})


@pytest.fixture
def small_store(tmp_path):
    """A tmpfs of ``SIZE`` mounted for the test (needs the right to mount: root, or CAP_SYS_ADMIN)."""
    mount = tmp_path / "store"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a {SIZE} tmpfs here ({done.stderr.strip() or done.returncode}): the full-disk test needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_store_that_fills_up_mid_fine_tune(small_store, tiny_backbone, mirror, fault_report):
    store = ArtifactStore(str(small_store), cache_dir=str(small_store.parent / "cache"))
    data = data_stage("rte", DataConfig(mirror=mirror), store)
    config = FinetuneConfig(benchmarks=["rte"], batch_size=8, max_length=32, max_train_examples=24, max_eval_examples=16)
    variant = Variant("base", "tiny", tiny_backbone)
    runs = [FinetuneRun(variant, "rte", seed, 3e-5) for seed in range(3)]

    first = finetune_stage("full", runs[0], data, config, store)
    published = leaderboard_stage("full", [tiny_backbone], ["rte"], [first], [read_result(store, first)], store, finetune=config)
    before = {name: (small_store / "pipelines" / "full" / name).read_bytes() for name in ("kept.json", "leaderboard.csv")}

    # one block left: the result (record and manifest) no longer fits, its failure record does
    failed = finetune_stage("full", runs[1], data, config, store, [fill_at_update_1(small_store, leave=1)])
    record = read_result(store, failed)
    assert failed.stage == FINETUNE_FAILED and record.status == "failed" and not store.has("finetune", failed.key)
    assert record.error.startswith(f"StoreError: the artifact store {small_store} is full (") and " free of 4.0 MB)" in record.error

    # nothing left: not even the failure record fits, and the run stops with one line
    with pytest.raises(StoreError) as stopped:
        finetune_stage("full", runs[2], data, config, store)
    line = str(stopped.value)
    assert "\n" not in line and line.startswith(f"fine-tune {runs[2].name}: neither its result nor its failure record could be written: "
                                                f"the artifact store {small_store} is full (0 B free of 4.0 MB)"), line
    with pytest.raises(StoreError, match=f"the artifact store {small_store} is full"):
        leaderboard_stage("full", [tiny_backbone], ["rte"], [first, failed], [read_result(store, first), record], store, finetune=config)

    # what was published before is intact: every artifact matches its manifest, no half-copied folder, the table unchanged
    for stage, key in [("data", data.key), ("finetune", first.key), ("leaderboard", published.output.key)]:
        store.fetch(stage, key)
    assert not list(small_store.rglob("*.tmp-*")), list(small_store.rglob("*.tmp-*"))
    assert {name: (small_store / "pipelines" / "full" / name).read_bytes() for name in before} == before

    (small_store / "filler").unlink()  # space again: a re-run publishes what failed
    assert finetune_stage("full", runs[1], data, config, store).stage == "finetune"
    fault_report("fault", f"the store (a {SIZE} tmpfs) filled at update 1 of a fine-tune, leaving one block, then none",
                 "one block: the fine-tune became a failure record naming the store and its space; none: one line "
                 f"('{line[:90]}...'); published artifacts and the leaderboard intact; after freeing space a re-run published it")
