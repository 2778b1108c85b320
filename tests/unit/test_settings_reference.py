"""docs/configuration.md's settings reference is generated from the config models' docstrings: a
setting added, renamed, re-documented or re-marked without `make docs` fails here."""

from __future__ import annotations

from muppet_core.config import REFERENCE_MARK, PipelinesFile, settings_reference
from muppet_core.schema import reference_rows
from tests.conftest import REPO


def test_the_settings_reference_is_what_the_models_generate():
    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert REFERENCE_MARK in page
    assert page.partition(REFERENCE_MARK)[2].strip() == settings_reference().strip(), "docs/configuration.md is stale: run `make docs`"


def test_every_setting_has_a_meaning_and_the_marks_show():
    rows = {path: (role, meaning) for path, _, _, role, meaning in reference_rows(PipelinesFile)}
    assert [path for path, (_, meaning) in rows.items() if not meaning] == []
    # The settings that only shape execution, `device` among them, say so.
    assert rows["pipelines.<name>.prefinetune.device"][0] == "execution"
    assert rows["pipelines.<name>.finetune.executor.kind"][0] == "execution"
    assert rows["pipelines.<name>.finetune.executor.work_pool"] == ("execution", "(deployment) The Prefect work pool whose workers run the fine-tunes.")
    assert rows["pipelines.<name>.finetune.seeds"][0] == "plan"
    assert rows["pipelines.<name>.finetune.learning_rates"][0] == "plan"
    assert rows["pipelines.<name>.finetune.epochs"][0] == "key"
    assert rows["pipelines.<name>.tracking.mlflow_uri"][0] == "execution"
