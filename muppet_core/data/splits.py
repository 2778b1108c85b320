"""Deterministic carving of missing splits: seeded, stable across runs and machines, disjoint."""

from __future__ import annotations

import hashlib
from typing import TypeVar

T = TypeVar("T")


def bucket(example_id: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by the example id and the seed."""
    h = hashlib.sha256(f"{seed}:{example_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def carve(records: list[T], fraction: float, seed: int, ids: list[str]) -> tuple[list[T], list[T]]:
    """Split ``records`` into (rest, carved) with about ``fraction`` carved, by id hash."""
    rest, carved = [], []
    for record, example_id in zip(records, ids):
        (carved if bucket(example_id, seed) < fraction else rest).append(record)
    return rest, carved


def complete_splits(
    splits: dict[str, list[T]], ids: dict[str, list[str]], fraction: float, seed: int
) -> tuple[dict[str, list[T]], dict[str, str]]:
    """Make sure there is a train and a validation split, carving what the source lacks.

    - train and validation present: kept as they are;
    - train only: validation is carved from train;
    - no train: train and validation are both carved from the validation split (else the test
      split), so no example is ever both trained and evaluated on.

    Returns:
        The splits, and a note per carved split saying where it came from.
    """
    out, notes = dict(splits), {}
    if "train" in out and "validation" not in out:
        out["train"], out["validation"] = carve(out["train"], fraction, seed, ids["train"])
        notes["validation"] = f"carved {fraction:.0%} of train (seed {seed})"
    elif "train" not in out:
        source = "validation" if "validation" in out else "test"
        if source not in out:
            raise ValueError(f"no labelled split to train on (have: {sorted(out)})")
        base = out.pop(source)
        out["train"], out["validation"] = carve(base, fraction, seed, ids[source])
        if source == "test":
            out.pop("test", None)
        notes["train"] = f"carved {1 - fraction:.0%} of {source} (seed {seed})"
        notes["validation"] = f"carved {fraction:.0%} of {source} (seed {seed})"
    return out, notes


def subsample(records: list[T], cap: int | None, seed: int) -> list[T]:
    """At most ``cap`` records, a seeded random subset in a stable order (all when cap is None)."""
    if cap is None or len(records) <= cap:
        return records
    import numpy as np

    keep = np.sort(np.random.default_rng(seed).permutation(len(records))[:cap])
    return [records[i] for i in keep]
