"""Work spread over machines (the fine-tunes of ``executor: deployment``, multi-node training) passes
its inputs and outputs through the artifact store, so every machine must reach the same store."""

from __future__ import annotations

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.errors import StoreError


def require_shared_store(store: ArtifactStore, why: str) -> None:
    """Refuse, before any work, a store other machines cannot reach: a local path.

    Args:
        store: the pipeline's store.
        why: what needs the other machines, as the message's subject (``finetune.executor: deployment``).

    Raises:
        StoreError: one line naming ``why``, the local store and what to use instead.
    """
    if store.is_local:
        raise StoreError(f"{why} runs on other machines, which cannot reach the local store {store.root}: use a store every machine reaches (s3://bucket/prefix)")
