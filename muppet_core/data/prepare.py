"""The data stage for one task: raw rows -> canonical records -> Parquet splits + stats."""

from __future__ import annotations

import collections
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from muppet_core.data.records import Record, problem, to_row
from muppet_core.data.sources import mirror_files, raw_splits
from muppet_core.data.splits import complete_splits
from muppet_core.errors import DataSourceError, first_line
from muppet_core.families import get_family
from muppet_core.registry import resolve, safe_name
from muppet_core.tasks.catalog import TaskSpec

if TYPE_CHECKING:
    from muppet_core.families.base import Family

MAX_DROP_EXAMPLES = 5
REJECTED = "rejected by normalizer"
"""The drop reason of a row its normalizer returned nothing for (by design: see ``TaskSpec.max_rejected_fraction``)."""


def normalize_rows(spec: TaskSpec, split: str, rows, normalizer) -> tuple[list[Record], dict[str, Any]]:
    """Apply the normalizer to every raw row and check each record.

    A normalizer returns a record, a list of records (one passage with several questions), or
    None. Malformed rows (unparseable, missing field, unknown label, empty text, bad offsets) are
    dropped, counted by reason, and the first few reported with their file and line.

    Raises:
        DataSourceError: more than ``spec.max_bad_fraction`` of the split is malformed (rejected rows
            included unless the entry sets ``max_rejected_fraction``), more than ``spec.max_rejected_fraction``
            is rejected, or the normalizer fails otherwise than on a bad row (any other exception, or it exits).
    """
    records: list[Record] = []
    drops: collections.Counter[str] = collections.Counter()
    examples: list[str] = []
    family = get_family(spec.family)
    total = 0
    for i, row in enumerate(rows):
        total += 1
        where = row.get("_where") or f"{split} row {i}"
        reason, produced = row.get("_error"), []
        if reason is None:
            try:
                out = normalizer(row, spec)
                produced = out if isinstance(out, list) else [] if out is None else [out]
                reason = None if produced else REJECTED
            except (KeyError, ValueError, IndexError, TypeError, AttributeError, ArithmeticError) as exc:
                reason = f"{type(exc).__name__}: {exc}"[:160]
            except (Exception, SystemExit) as exc:  # a failing normalizer, not a bad row: say so, never a traceback
                what = f"exited ({exc.code})" if isinstance(exc, SystemExit) else f"raised {type(exc).__name__}: {first_line(exc)}"
                name = f"{getattr(normalizer, '__module__', '?')}:{getattr(normalizer, '__qualname__', normalizer)}"
                raise DataSourceError(f"dataset '{spec.name}': the normalizer {name} {what} at {where}") from None
        for k, record in enumerate(produced):
            reason = reason or problem(record, family, spec)
            if reason:
                break
            if not record.id:
                record = dataclasses.replace(record, id=f"{split}-{i}" + (f"-{k}" if len(produced) > 1 else ""))
            produced[k] = record
        if reason:
            drops[reason.split(":")[0]] += 1
            if len(examples) < MAX_DROP_EXAMPLES:
                examples.append(f"{where}: {reason}")
            continue
        records.extend(produced)
    dropped = sum(drops.values())
    report = {"rows": total, "dropped": dropped, "drop_reasons": dict(drops), "drop_examples": examples}
    rejected = drops[REJECTED] if spec.max_rejected_fraction is not None else 0
    where = f"dataset '{spec.name}' split '{split}'"
    if total and (dropped - rejected) / total > spec.max_bad_fraction:
        what = "malformed" if rejected == 0 else f"malformed (and {rejected} rejected by its normalizer)"
        malformed = {k: v for k, v in drops.items() if k != REJECTED or not rejected}
        raise DataSourceError(
            f"{where}: {dropped - rejected} of {total} rows are {what} "
            f"(more than max_bad_fraction={spec.max_bad_fraction}): {malformed}; first: {'; '.join(examples)}"
        )
    if rejected and rejected / total > spec.max_rejected_fraction:
        raise DataSourceError(
            f"{where}: its normalizer rejected {rejected} of {total} rows (more than max_rejected_fraction="
            f"{spec.max_rejected_fraction}, the share the entry expects); first: {'; '.join(examples)}"
        )
    return records, report


def _label_counts(records: list[Record]) -> dict[str, int]:
    labels = [getattr(r, "label", None) for r in records]
    if not labels or labels[0] is None or isinstance(labels[0], float):
        return {}
    return {str(k): v for k, v in sorted(collections.Counter(labels).items())}


def _token_counter(tokenizer) -> Callable[[list[tuple[str, str | None]]], list[int]]:
    """How many tokens each (text, second text or None) pair encodes to, special tokens included, untruncated.

    A fast tokenizer whose Rust tokenizer neither truncates nor pads is asked for the encodings alone
    (``encode_batch_fast``: no offsets, no Python lists of ids), half the time of a full call for the same
    counts; any other tokenizer is called as the model's inputs are encoded."""
    backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    if backend is not None and backend.truncation is None and backend.padding is None:
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)

        def fast(pairs: list[tuple[str, str | None]]) -> list[int]:
            inputs = [a if b is None else (a, b) for a, b in pairs]
            return [len(e.ids) for e in encode(inputs, add_special_tokens=True)]

        return fast

    def called(pairs: list[tuple[str, str | None]]) -> list[int]:
        firsts, seconds = [a for a, _ in pairs], [b for _, b in pairs]
        encoded = tokenizer(firsts, seconds if seconds[0] is not None else None, add_special_tokens=True, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    return called


def length_percentiles(family: Family, records: list[Record], tokenizer, chunk: int = 2048) -> dict[str, int]:
    """Percentiles (50, 90, 99, max) of input length in tokens, special tokens included, untruncated,
    of the text each record shows the model (the family's ``model_inputs``)."""
    lengths: list[int] = []
    count = _token_counter(tokenizer)
    for start in range(0, len(records), chunk):
        pairs = [family.model_inputs(r) for r in records[start : start + chunk]]
        lengths.extend(count(pairs))
    if not lengths:
        return {}
    p50, p90, p99 = np.percentile(lengths, [50, 90, 99])
    return {"p50": int(p50), "p90": int(p90), "p99": int(p99), "max": int(max(lengths))}


def prepare_task(
    spec: TaskSpec, mirror: str | None, fraction: float, seed: int, out_dir: Path, tokenizer=None, revision: str | None = None
) -> dict[str, Any]:
    """Normalize every split of ``spec`` into ``out_dir/<split>.parquet`` and write ``stats.json``.

    Args:
        spec: the catalog entry.
        mirror: data mirror root (None: hub only).
        fraction: share carved for validation where a split is missing.
        seed: carving seed.
        out_dir: where the splits and stats go.
        tokenizer: the pipeline's tokenizer, for length percentiles in the stats (optional).
        revision: the hub commit sha to read rows from the hub at (the one the data is keyed by).

    Returns:
        The stats record: source (and, from the hub, its revision), rows, label counts and token-length percentiles per split,
        dropped rows with reasons, carving notes.

    Raises:
        DataSourceError: a file cannot be read or parsed, a split has no rows at all, or too many
            of a split's rows are malformed; the message names the dataset, split and file.
    """
    source, raw = raw_splits(spec, mirror, revision)
    normalizer = resolve(spec.normalizer if source == "mirror" else spec.hub_normalizer())
    splits, drop_stats = {}, {}
    for split, rows in raw.items():
        safe_name("split", split)
        rows = tqdm(rows, desc=f"{spec.name}/{split}", unit=" rows", file=sys.stderr, leave=False, disable=None)
        try:
            splits[split], drop_stats[split] = normalize_rows(spec, split, rows, normalizer)
        except DataSourceError as exc:
            message = str(exc)
            raise DataSourceError(message if message.startswith("dataset ") else f"dataset '{spec.name}': {message}") from None
        if not drop_stats[split]["rows"]:
            where = f"is {(mirror_files(spec, mirror) or {}).get(split)} empty?" if source == "mirror" else f"hub {spec.hub.path}"
            raise DataSourceError(f"dataset '{spec.name}' split '{split}' has no rows ({where})")
    ids = {split: [r.id for r in recs] for split, recs in splits.items()}
    splits, carved = complete_splits(splits, ids, fraction, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, records in splits.items():
        pd.DataFrame([to_row(r) for r in records]).to_parquet(out_dir / f"{split}.parquet", index=False)
    stats = {
        "task": spec.name,
        "family": spec.family,
        "source": source,
        **({"revision": revision or spec.hub.revision} if source == "hub" else {}),
        "rows": {s: len(r) for s, r in splits.items()},
        "labels": {s: _label_counts(r) for s, r in splits.items()},
        "normalization": drop_stats,
        "carved": carved,
        "tokens": {s: length_percentiles(get_family(spec.family), r, tokenizer) for s, r in splits.items()} if tokenizer is not None else {},
    }
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=1))
    return stats


def load_split(directory: Path, family: str, split: str) -> list[Record]:
    """Read a normalized split back as records of ``family`` (its name)."""
    frame = pd.read_parquet(Path(directory) / f"{split}.parquet")
    rebuild = get_family(family).from_row
    return [rebuild(row) for row in frame.to_dict("records")]


