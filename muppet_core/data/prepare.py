"""The data stage for one task: raw rows -> canonical records -> Parquet splits + stats."""

from __future__ import annotations

import collections
import dataclasses
import json
from pathlib import Path
from typing import Any

import pandas as pd

from muppet_core.data.records import Record, from_row, to_row
from muppet_core.data.sources import raw_splits
from muppet_core.data.splits import complete_splits
from muppet_core.registry import resolve
from muppet_core.tasks.catalog import TaskSpec

MAX_DROP_EXAMPLES = 5


def normalize_rows(spec: TaskSpec, split: str, rows, normalizer) -> tuple[list[Record], dict[str, Any]]:
    """Apply the normalizer to every row; rows it rejects are counted, with a few examples."""
    records: list[Record] = []
    drops: collections.Counter[str] = collections.Counter()
    examples: list[str] = []
    for i, row in enumerate(rows):
        try:
            record = normalizer(row, spec)
            reason = None if record is not None else "rejected by normalizer"
        except (KeyError, ValueError, IndexError, TypeError, AttributeError) as exc:
            record, reason = None, f"{type(exc).__name__}: {exc}"[:120]
        if record is None:
            drops[reason.split(":")[0]] += 1
            if len(examples) < MAX_DROP_EXAMPLES:
                examples.append(f"row {i}: {reason}")
            continue
        if not record.id:
            record = dataclasses.replace(record, id=f"{split}-{i}")
        records.append(record)
    return records, {"dropped": sum(drops.values()), "drop_reasons": dict(drops), "drop_examples": examples}


def _label_counts(records: list[Record]) -> dict[str, int]:
    labels = [getattr(r, "label", None) for r in records]
    if not labels or labels[0] is None or isinstance(labels[0], float):
        return {}
    return {str(k): v for k, v in sorted(collections.Counter(labels).items())}


def prepare_task(spec: TaskSpec, mirror: str | None, fraction: float, seed: int, out_dir: Path) -> dict[str, Any]:
    """Normalize every split of ``spec`` into ``out_dir/<split>.parquet`` and write ``stats.json``.

    Returns:
        The stats record: source, rows and label counts per split, drops and carving notes.
    """
    source, raw = raw_splits(spec, mirror)
    normalizer = resolve(spec.normalizer if source == "mirror" else spec.hub_normalizer())
    splits, drop_stats = {}, {}
    for split, rows in raw.items():
        splits[split], drop_stats[split] = normalize_rows(spec, split, rows, normalizer)
    ids = {split: [r.id for r in recs] for split, recs in splits.items()}
    splits, carved = complete_splits(splits, ids, fraction, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, records in splits.items():
        pd.DataFrame([to_row(r) for r in records]).to_parquet(out_dir / f"{split}.parquet", index=False)
    stats = {
        "task": spec.name,
        "family": spec.family,
        "source": source,
        "rows": {s: len(r) for s, r in splits.items()},
        "labels": {s: _label_counts(r) for s, r in splits.items()},
        "normalization": drop_stats,
        "carved": carved,
    }
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=1))
    return stats


def load_split(directory: Path, family: str, split: str) -> list[Record]:
    """Read a normalized split back as records."""
    frame = pd.read_parquet(Path(directory) / f"{split}.parquet")
    return [from_row(family, row) for row in frame.to_dict("records")]


