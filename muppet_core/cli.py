"""The `muppet` command's library subcommands (validate, list, tasks, plan, results, push, join) and its parser.

The subcommands that start flows (run, serve, deploy, data prepare) live with the flows, in
``flows/cli.py``, which is the console script's entry point; nothing here imports the flows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

import yaml

from muppet_core.auth import use_saved_auth_string
from muppet_core.errors import MuppetError, first_line
from muppet_core.families import FAMILIES, get_family
from muppet_core.pipelines import DEFAULT_FILE, load_pipeline, load_validated

HF_TOKEN_ENV = "HF_TOKEN"
"""The only place `muppet push` takes its Hub token from."""


def _validate(args: argparse.Namespace) -> int:
    pipelines = load_validated(args.file)
    print(f"{args.file}: OK ({len(pipelines.pipelines)} pipelines: {', '.join(sorted(pipelines.pipelines))})")
    return 0


def _list(args: argparse.Namespace) -> int:
    for name, pipe in sorted(load_validated(args.config).pipelines.items()):
        print(f"{name:16} {pipe.description}")
    return 0


def _task_row(spec) -> dict:
    return {
        "name": spec.name,
        "family": spec.family,
        "hub": spec.hub.path + (f":{spec.hub.name}" if spec.hub.name else ""),
        "metric": spec.metric,
        "n": get_family(spec.family).loss_n_rule(spec),
        "mirror": sorted(spec.mirror),
    }


def _tasks_ls(args: argparse.Namespace) -> int:
    from muppet_core.tasks.catalog import load_catalog

    if args.config:
        load_validated(args.config)  # its own catalog folders join the package's
    rows = [_task_row(s) for s in load_catalog().values() if args.family in (None, s.family)]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'name':22} {'family':16} {'metric':12} {'n(i)':16} {'mirror splits':28} hub")
    for r in rows:
        print(f"{r['name']:22} {r['family']:16} {r['metric']:12} {str(r['n']):16} {','.join(r['mirror']) or '-':28} {r['hub']}")
    print(f"{len(rows)} tasks")
    return 0


def _tasks_show(args: argparse.Namespace) -> int:
    from muppet_core.tasks.catalog import get_task

    if args.config:
        load_validated(args.config)
    try:
        spec = get_task(args.name)
    except KeyError as exc:
        raise MuppetError(exc.args[0]) from None
    print(yaml.safe_dump({spec.name: spec.model_dump(exclude={"name"}, exclude_defaults=True)}, sort_keys=False), end="")
    if args.resolve:
        from muppet_core.data.sources import hub_revision

        print(f"# hub {spec.hub.path} at {spec.hub.revision or 'main'} is now commit {hub_revision(spec)}")
    elif spec.hub.revision is None:
        print("# hub revision: not pinned; each run reads main's current commit and records its sha in the data "
              "artifact's manifest (--resolve asks the hub for it now)")
    return 0


def _results(args: argparse.Namespace) -> int:
    from muppet_core.artifacts.store import ArtifactStore
    from muppet_core.leaderboard.read import missing_tables, results_text
    from muppet_core.pipelines import open_store

    # --store names the store itself (no pipelines.yaml needed); else the pipeline's, with its store options.
    store = ArtifactStore(args.store) if args.store else open_store(load_pipeline(args.pipeline, args.config))
    if args.prune:
        from muppet_core.leaderboard.stage import prune_backbone

        published, entry = prune_backbone(store, args.pipeline, args.prune)
        print(f"pruned '{args.prune}' ({entry.rows} row(s)) from the leaderboard of '{args.pipeline}': {published.csv_uri}; "
              f"its results stay in the store, and evaluating it again brings it back. history: {published.history_uri}")
        return 0
    if not args.history and missing_tables(store, args.pipeline):
        from muppet_core.leaderboard.stage import restore_published  # the training stack, only when there is a table to rebuild

        restore_published(store, args.pipeline)  # a table file deleted by hand is built again from the kept results
    text = results_text(store, args.pipeline, args.format, backbone=args.backbone, history=args.history)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise MuppetError(f"cannot write --output {args.output}: {exc.strerror or first_line(exc)}") from None
    else:
        sys.stdout.write(text)
    return 0


def _push(args: argparse.Namespace) -> int:
    token = os.environ.get(HF_TOKEN_ENV)
    if not token:
        raise MuppetError(f"{HF_TOKEN_ENV} is not set: export a Hugging Face token with write access to {args.repo}")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # read once, when huggingface_hub is imported
    from muppet_core.pipelines import open_store
    from muppet_core.publish.hub import choose, find_scored, push

    pipelines = load_validated(args.config)
    names = [args.pipeline] if args.pipeline else sorted(pipelines.pipelines)
    stores = {n: open_store(load_pipeline(n, args.config), args.store) for n in names}
    scored = choose(find_scored(stores, args.variant), args.variant)
    url = push(scored, args.repo, token, private=args.private, base_model=args.base_model)
    scores = sum(c.value is not None for n, c in scored.row.cells.items() if n in scored.board.benchmarks)
    print(f"pushed {scored.row.model} (key {scored.row.variant_key}, {scores} score(s) from '{scored.pipeline}') to {args.repo}: {url}")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from muppet_core.pipelines import open_store
    from muppet_core.planning.render import markdown, to_json
    from muppet_core.planning.run import make_plan

    cfg = load_pipeline(args.pipeline, args.config)
    plan = make_plan(args.pipeline, cfg, open_store(cfg, args.store), args.config, args.gpus, args.gpu, args.mfu)
    print(to_json(plan) if args.json else markdown(plan), end="" if not args.json else "\n")
    return 0


def _join(args: argparse.Namespace) -> int:
    from muppet_core.training.nodes import join

    ran = join(args.store, lambda line: print(line, flush=True), once=args.once, idle_s=args.idle)
    print(f"took part in {ran} multi-node job(s)")
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """The parser with the library subcommands, and its subparsers for the flows' own."""
    parser = argparse.ArgumentParser(prog="muppet", description="Pre-finetuning pipelines (Muppet) on Prefect.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a pipelines file against the schema and the task catalog")
    p.add_argument("file", nargs="?", default=DEFAULT_FILE)
    p.set_defaults(func=_validate)

    p = sub.add_parser("list", help="list the pipelines of a file")
    p.add_argument("--config", default=DEFAULT_FILE)
    p.set_defaults(func=_list)

    p = sub.add_parser("tasks", help="the task catalog")
    tasks = p.add_subparsers(dest="tasks_command", required=True)
    t = tasks.add_parser("ls", help="list catalog entries")
    t.add_argument("--family", choices=FAMILIES.names())
    t.add_argument("--config", help="also the catalog folders of this pipelines file (its `catalog:`)")
    t.add_argument("--json", action="store_true", help="one JSON list (name, family, hub, metric, n, mirror splits)")
    t.set_defaults(func=_tasks_ls)
    t = tasks.add_parser("show", help="one catalog entry as YAML")
    t.add_argument("name")
    t.add_argument("--config", help="also the catalog folders of this pipelines file (its `catalog:`)")
    t.add_argument("--resolve", action="store_true", help="also ask the hub which commit sha its revision (main unless pinned) is now")
    t.set_defaults(func=_tasks_show)

    p = sub.add_parser("results", help="print a pipeline's latest leaderboard (or its history) from the store, re-running nothing")
    p.add_argument("pipeline")
    p.add_argument("--format", choices=["csv", "md", "json"], default="csv")
    p.add_argument("--config", default=DEFAULT_FILE)
    p.add_argument("--store", help="store root (directory or s3:// URI); default: the pipeline's")
    p.add_argument("--output", help="write to this file instead of stdout")
    p.add_argument("--backbone", help="only the rows of this backbone label (the part of `model` before ' / ')")
    p.add_argument("--history", action="store_true", help="every run's scores, oldest first, instead of the latest table")
    p.add_argument("--prune", metavar="BACKBONE", help="drop this backbone label from the table (recorded in the history; its results stay in the store)")
    p.set_defaults(func=_results)

    p = sub.add_parser("push", help="upload a pre-finetuned variant (encoder, heads, a model card with its scores) to a Hugging Face Hub repository")
    p.add_argument("variant", metavar="VARIANT_OR_KEY", help="a leaderboard row (`tiny / prefinetuned`), a backbone label, or the pre-finetuned model's key (8+ characters)")
    p.add_argument("--repo", required=True, metavar="ORG/NAME", help="the Hub repository, created if missing")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--pipeline", help="take the scores from this pipeline's leaderboard (default: the one leaderboard that shows the variant)")
    p.add_argument("--base-model", help="the Hub id of the base model, for the card's base_model, where the backbone does not say")
    p.add_argument("--config", default=DEFAULT_FILE)
    p.add_argument("--store", help="store root (directory or s3:// URI); default: each pipeline's")
    p.set_defaults(func=_push)

    p = sub.add_parser("plan", help="what a run of a pipeline will cost before it starts: tokens, FLOPs, GPU-hours, memory per GPU, fine-tunes, store bytes, what the store holds")
    p.add_argument("pipeline")
    p.add_argument("--config", default=DEFAULT_FILE)
    p.add_argument("--gpus", type=int, help="devices of the pre-finetune (default: the pipeline's nnodes x nproc_per_node)")
    p.add_argument("--gpu", metavar="KIND", help="the device kind (h100, h200, a100, v100, cpu; default: this machine's)")
    p.add_argument("--mfu", type=float, help="the share of the device's peak a run reaches (default: its stored bench/gpu_check.py result, else an assumption)")
    p.add_argument("--store", help="read this store (directory or s3:// URI) instead of the pipeline's")
    p.add_argument("--json", action="store_true", help="one JSON document instead of the tables")
    p.set_defaults(func=_plan)

    p = sub.add_parser("join", help="on another node of a multi-node pre-finetune: run this node's share of every job the flow announces in the store")
    p.add_argument("store", help="the pipeline's store root (an s3:// URI, or a path every node mounts)")
    p.add_argument("--once", action="store_true", help="exit after one job (its failure exits non-zero)")
    p.add_argument("--idle", type=float, metavar="SECONDS", help="exit after this long without a new job (default: wait forever)")
    p.set_defaults(func=_join)
    return parser, sub


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run its subcommand; a MuppetError is printed as ``muppet: error: ...`` lines (exit 2)."""
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        use_saved_auth_string()  # a server started here by `muppet serve --with-server` wants its auth string
        return handler(args)
    except MuppetError as exc:
        for line in str(exc).splitlines():
            print(f"muppet: error: {line}", file=sys.stderr)
        return 2
