"""Benchmark of the data stage over every dataset staged in the mirror (or the --datasets given).

Runs the data stage cold (normalize + tokenize for the length statistics, in the pipeline's
backbone's tokens) into a fresh store on one core, then again (served from the store), and
prints rows/s per dataset, over the whole collection and over the short-text datasets (median
input under 64 tokens), plus the cached re-run's time as a share of the cold one.

    .venv/bin/python bench/data_prepare.py [--mirror DIR] [--datasets trec,copa] [--json]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import common  # noqa: E402  (bench/common.py, beside this script)

SHORT_TEXT_TOKENS = 64


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark on the command line `argv` (default: sys.argv); returns the exit status."""
    parser = common.parser(__doc__)
    parser.add_argument("--datasets", type=common.names, default=None, help="comma-separated catalog names (default: every dataset with files in the mirror)")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    from muppet_core.artifacts.store import ArtifactStore
    from muppet_core.data.sources import mirror_files
    from muppet_core.data.stage import data_stage, read_stats
    from muppet_core.models.backbone import base_variant
    from muppet_core.tasks.catalog import load_catalog

    pipeline = common.pipeline(args)
    data = pipeline.data
    staged = [name for name, spec in sorted(load_catalog().items()) if mirror_files(spec, data.mirror)]
    missing = sorted(set(args.datasets or ()) - set(staged))
    if missing:
        parser.error(f"no files in the mirror {data.mirror} for {', '.join(missing)}; staged: {', '.join(staged)}")
    tasks = args.datasets or staged

    with tempfile.TemporaryDirectory() as tmp:
        store = ArtifactStore(str(Path(tmp) / "store"))
        tokenizer = base_variant(pipeline.backbone, Path(tmp))
        per_task, cold = {}, common.Timer().start()
        for name in tasks:
            output = data_stage(name, data, store, tokenizer)
            seconds = cold.lap()
            stats = read_stats(store, output)
            rows = sum(stats["rows"].values())
            p50 = max((t.get("p50", 0) for t in stats["tokens"].values()), default=0)
            per_task[name] = {"rows": rows, "seconds": round(seconds, 3), "rows_per_s": round(common.rate(rows, seconds)), "p50_tokens": p50}
            print(f"{name:22} {rows:>7} rows {seconds:7.2f} s {common.rate(rows, seconds):>9.0f} rows/s  p50 {p50} tokens", file=sys.stderr)
        cached = common.Timer().start()
        hits = [data_stage(name, data, store, tokenizer).cache_hit for name in tasks]
        cached.lap()

    short = {k: v for k, v in per_task.items() if v["p50_tokens"] < SHORT_TEXT_TOKENS}
    total_rows = sum(v["rows"] for v in per_task.values())
    figures = {
        "datasets": len(tasks),
        "rows": total_rows,
        "cold_seconds": round(cold.seconds, 2),
        "rows_per_s": round(common.rate(total_rows, cold.seconds)),
        "short_text_datasets": sorted(short),
        "short_text_rows_per_s": round(common.rate(sum(v["rows"] for v in short.values()), sum(v["seconds"] for v in short.values()))) if short else None,
        "cached_seconds": round(cached.seconds, 2),
        "cached_share_of_cold": round(cached.seconds / cold.seconds, 4),
        "all_cache_hits": all(hits),
        "per_dataset": per_task,
    }
    per_dataset = [(n, v["rows"], v["seconds"], v["rows_per_s"], v["p50_tokens"]) for n, v in per_task.items()]
    totals = [
        ("whole collection, rows/s (one core)", figures["rows_per_s"]),
        (f"short-text datasets ({len(short)}), rows/s", "-" if figures["short_text_rows_per_s"] is None else figures["short_text_rows_per_s"]),
        ("cold, s", figures["cold_seconds"]),
        ("cached re-run, s", figures["cached_seconds"]),
        ("cached share of cold", f"{figures['cached_share_of_cold']:.1%}"),
        ("all cache hits", str(figures["all_cache_hits"])),
    ]
    summary = common.table(per_dataset, ("dataset", "rows", "seconds", "rows/s", "p50 tokens")) + "\n\n" + common.table(totals)
    common.emit(summary, figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
