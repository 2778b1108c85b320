"""The `muppet` command: validate, list, run and results."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from muppet_core.errors import MuppetError
from muppet_core.pipelines import DEFAULT_FILE, load_pipeline, load_validated

RUNTIME_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "muppet_core",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def _validate(args: argparse.Namespace) -> int:
    pipelines = load_validated(args.file)
    print(f"{args.file}: OK ({len(pipelines.pipelines)} pipelines: {', '.join(sorted(pipelines.pipelines))})")
    return 0


def _list(args: argparse.Namespace) -> int:
    for name, pipe in sorted(load_validated(args.config).pipelines.items()):
        print(f"{name:16} {pipe.description}")
    return 0


def _preflight(name: str, config: str) -> None:
    """Refuse before any work starts: bad config, datasets found neither in the mirror nor on the hub."""
    from muppet_core.data.sources import hub_reachable_or_raise
    from muppet_core.tasks.catalog import get_task

    pipeline = load_pipeline(name, config)
    for task in sorted({*pipeline.prefinetune.tasks, *pipeline.finetune.benchmarks}):
        hub_reachable_or_raise(get_task(task), pipeline.data.mirror)


def _run(args: argparse.Namespace) -> int:
    _preflight(args.pipeline, args.config)
    for key, value in RUNTIME_DEFAULTS.items():
        os.environ.setdefault(key, value)
    logging.getLogger("muppet_core").setLevel(logging.INFO)
    from flows.reproduce import reproduce

    csv_uri = reproduce(pipeline=args.pipeline, config=args.config)
    print(f"leaderboard: {csv_uri}")
    return 0


def _results(args: argparse.Namespace) -> int:
    from muppet_core.artifacts.store import ArtifactStore
    from muppet_core.leaderboard.stage import published_path

    store = ArtifactStore(args.store or load_pipeline(args.pipeline, args.config).store)
    path = published_path(args.pipeline, args.format)
    if not store.exists(path):
        raise MuppetError(f"no leaderboard for '{args.pipeline}' in {store.root}; run `muppet run {args.pipeline}` first")
    text = store.read_text(path)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="muppet", description="Pre-finetuning pipelines (Muppet) on Prefect.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a pipelines file against the schema and the task catalog")
    p.add_argument("file", nargs="?", default=DEFAULT_FILE)
    p.set_defaults(func=_validate)

    p = sub.add_parser("list", help="list the pipelines of a file")
    p.add_argument("--config", default=DEFAULT_FILE)
    p.set_defaults(func=_list)

    p = sub.add_parser("run", help="run a pipeline end to end (Prefect ephemeral mode unless PREFECT_API_URL is set)")
    p.add_argument("pipeline")
    p.add_argument("--config", default=DEFAULT_FILE)
    p.set_defaults(func=_run)

    p = sub.add_parser("results", help="print a pipeline's latest leaderboard from the store")
    p.add_argument("pipeline")
    p.add_argument("--format", choices=["csv", "md", "json"], default="csv")
    p.add_argument("--config", default=DEFAULT_FILE)
    p.add_argument("--store", help="store root (directory or s3:// URI); default: the pipeline's")
    p.add_argument("--output", help="write to this file instead of stdout")
    p.set_defaults(func=_results)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `muppet` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MuppetError as exc:
        for line in str(exc).splitlines():
            print(f"muppet: error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
