"""Deterministic carving of missing splits: seeded, stable across runs and machines, disjoint."""

from __future__ import annotations

import hashlib
import math
from typing import TypeVar

from muppet_core.errors import SelectionError

T = TypeVar("T")


SELECTION_SALT = "selection"
"""Salt of the selection slice's hash. The data stage carves validation with the unsalted hash, so rows
left in a carved train all hash at or above the validation fraction: a slice carved from them with the
same hash would be empty. The salt makes the slice's hash independent of the data stage's."""

SELECTION_FLOOR = 50
"""The selection slice must hold at least this many examples, or 5% of train where train is smaller."""


def bucket(example_id: str, seed: int, salt: str = "") -> float:
    """A uniform number in [0, 1) fixed by the example id, the seed and, where given, a salt (an
    independent hash for each salt)."""
    h = hashlib.sha256(f"{salt}:{seed}:{example_id}".encode() if salt else f"{seed}:{example_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def carve(records: list[T], fraction: float, seed: int, ids: list[str], salt: str = "") -> tuple[list[T], list[T]]:
    """Split ``records`` into (rest, carved) with about ``fraction`` carved, by id hash (see ``bucket``)."""
    rest, carved = [], []
    for record, example_id in zip(records, ids):
        (carved if bucket(example_id, seed, salt) < fraction else rest).append(record)
    return rest, carved


def selection_floor(train_rows: int) -> int:
    """The fewest examples a selection slice carved from ``train_rows`` training rows may hold:
    ``SELECTION_FLOOR``, or 5% of train (at least 1) where that is smaller."""
    return max(1, min(SELECTION_FLOOR, math.ceil(0.05 * train_rows)))


def carve_selection(records: list[T], fraction: float, benchmark: str) -> tuple[list[T], list[T]]:
    """Split a benchmark's training ``records`` into (train, selection slice): about ``fraction`` by
    the salted id hash (see ``SELECTION_SALT``).

    Raises:
        SelectionError: the slice holds fewer examples than ``selection_floor`` allows.
    """
    train, selection = carve(records, fraction, 0, [r.id for r in records], SELECTION_SALT)
    floor = selection_floor(len(records))
    if len(selection) < floor:
        raise SelectionError(
            f"{benchmark}: the selection slice holds {len(selection)} of {len(records)} training examples, below the floor of {floor}: "
            f"raise finetune.selection_fraction or the training examples, or select nothing (one learning rate, no eval_every)"
        )
    return train, selection


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


def _files(files: str | list[str] | dict[str, str]) -> str:
    values = [files] if isinstance(files, str) else list(files.values()) if isinstance(files, dict) else list(files)
    return ", ".join(dict.fromkeys(values))


def describe_scored(spec, stats: dict, scored: int, sample_seed: int = 0) -> str:
    """What a fine-tune scored, in words: whether the validation split is the benchmark's official dev
    set, the files it comes from, how it was carved when the source lacks it, and how many of its
    examples were scored (all, or a seeded sample).

    Args:
        spec: the benchmark's catalog entry (``official_validation``, ``validation_note``, ``mirror``).
        stats: the data stage's stats record of the benchmark (``source``, ``rows``, ``carved``).
        scored: validation examples scored.
        sample_seed: the seed of the sample when fewer than all were scored.
    """
    carved = stats.get("carved", {}).get("validation")
    if stats.get("source") == "mirror":
        source = "validation" if "validation" in spec.mirror or "train" not in spec.mirror else "train"
        files = _files(spec.mirror[source] if source in spec.mirror else spec.mirror[next(iter(spec.mirror))])
    else:
        files = f"hub {spec.hub.path}" + (f"/{spec.hub.name}" if spec.hub.name else "")
    if carved:
        what = f"{carved} [{files}]"
    elif spec.official_validation:
        what = f"official validation split [{files}]"
    else:
        what = f"validation split of the source [{files}], not known to be the official dev set"
    total = stats.get("rows", {}).get("validation", scored)
    count = f"all {total}" if scored >= total else f"a seeded sample (seed {sample_seed}) of {scored} of {total}"
    return f"{what}: {count} scored" + (f"; {spec.validation_note}" if spec.validation_note else "")
