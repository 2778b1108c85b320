"""Work that runs on other machines refuses a store they cannot reach, in one line, and takes one they can."""

from __future__ import annotations

import pytest

from muppet_core.artifacts.shared import require_shared_store
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.errors import StoreError


def test_a_local_store_is_refused_in_one_line_naming_what_needs_other_machines(tmp_path):
    with pytest.raises(StoreError) as refused:
        require_shared_store(ArtifactStore(str(tmp_path / "store")), "finetune.executor: deployment")
    message = str(refused.value)
    assert "\n" not in message and message.startswith("finetune.executor: deployment runs on other machines")
    assert str(tmp_path / "store") in message and "s3://" in message


def test_an_s3_store_is_taken():
    require_shared_store(ArtifactStore("s3://bucket/prefix"), "finetune.executor: deployment")
