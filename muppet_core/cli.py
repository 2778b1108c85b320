"""The `muppet` command: validate, list, run and results."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import yaml

from muppet_core.auth import use_saved_auth_string
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


def _task_row(spec) -> dict:
    return {
        "name": spec.name,
        "family": spec.family,
        "hub": spec.hub.path + (f":{spec.hub.name}" if spec.hub.name else ""),
        "metric": spec.metric,
        "n": spec.loss_n_rule(),
        "mirror": sorted(spec.mirror),
    }


def _tasks_ls(args: argparse.Namespace) -> int:
    from muppet_core.tasks.catalog import load_catalog

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

    try:
        spec = get_task(args.name)
    except KeyError as exc:
        raise MuppetError(exc.args[0]) from None
    print(yaml.safe_dump({spec.name: spec.model_dump(exclude={"name"}, exclude_defaults=True)}, sort_keys=False), end="")
    return 0


def _data_prepare(args: argparse.Namespace) -> int:
    _preflight(args.pipeline, args.config)
    _runtime_defaults()
    from flows.data import prepare_data
    from muppet_core.data.stage import read_stats
    from muppet_core.models.backbone import base_variant
    from muppet_core.pipelines import open_store

    pipeline = load_pipeline(args.pipeline, args.config)
    store = open_store(pipeline)
    outputs = prepare_data(pipeline, base_variant(pipeline.backbone, store.cache_dir))
    print(f"{'dataset':20} {'source':7} {'cache':5} {'dropped':>7}  rows")
    for name, output in sorted(outputs.items()):
        stats = read_stats(store, output)
        dropped = sum(s["dropped"] for s in stats["normalization"].values())
        rows = ", ".join(f"{k}={v}" for k, v in stats["rows"].items())
        print(f"{name:20} {stats['source']:7} {'hit' if output.cache_hit else 'miss':5} {dropped:>7}  {rows}")
    return 0


def _preflight(name: str, config: str, backbones: list[str] | None = None, store: str | None = None) -> None:
    """Refuse before any work starts: bad config, backbones that cannot be found (the pipeline's,
    its watch list's, or those given on the command line), datasets found neither in the mirror
    nor on the hub."""
    from muppet_core.data.sources import hub_reachable_or_raise
    from muppet_core.pipelines import check_backbones, open_store
    from muppet_core.tasks.catalog import get_task

    pipeline = load_pipeline(name, config)
    check_backbones(pipeline, name, os.path.basename(config), backbones)
    for task in pipeline.data_tasks():
        hub_reachable_or_raise(get_task(task), pipeline.data.mirror)
    open_store(pipeline.model_copy(update={"store": store}) if store else pipeline).check_access()


def _runtime_defaults() -> None:
    """Environment for Prefect and tokenizers, set before Prefect is imported."""
    for key, value in RUNTIME_DEFAULTS.items():
        os.environ.setdefault(key, value)
    logging.getLogger("muppet_core").setLevel(logging.INFO)


def _run(args: argparse.Namespace) -> int:
    _preflight(args.pipeline, args.config, args.backbone, args.store)
    _runtime_defaults()
    from flows.reproduce import reproduce

    csv_uri = reproduce(pipeline=args.pipeline, config=args.config, backbones=args.backbone, store=args.store)
    print(f"leaderboard: {csv_uri}")
    return 0


def _deployments(args: argparse.Namespace, module_entrypoint: bool):
    _runtime_defaults()
    from flows.deployments import build_deployments

    return build_deployments(args.config, args.pipeline or None, module_entrypoint)


def _deploy(args: argparse.Namespace) -> int:
    deployments = _deployments(args, module_entrypoint=bool(args.work_pool))
    from flows.deployments import deploy_to_pool, deployment_name

    if args.work_pool:
        deploy_to_pool(deployments, args.work_pool, args.image)
    else:
        for d in deployments:
            d.apply()
    where = f"work pool '{args.work_pool}'" if args.work_pool else "no work pool (run `muppet serve` to execute their runs)"
    for d in deployments:
        schedule = f"  schedule: {d.schedules[0].schedule.cron}" if d.schedules else ""
        print(f"deployed {deployment_name(d.name)} on {where}{schedule}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from muppet_core.server import start_local_server

    server = None
    if args.with_server and not os.environ.get("PREFECT_API_URL"):
        server = start_local_server(args.port, log=args.server_log, auth=not args.no_auth)
    try:
        deployments = _deployments(args, module_entrypoint=False)
        from flows.deployments import serve

        serve(deployments, limit=args.limit)
    finally:
        if server:
            server.stop()
    return 0


def _results(args: argparse.Namespace) -> int:
    from muppet_core.artifacts.store import ArtifactStore
    from muppet_core.leaderboard.read import results_text

    store = ArtifactStore(args.store or load_pipeline(args.pipeline, args.config).store)
    text = results_text(store, args.pipeline, args.format, backbone=args.backbone, history=args.history)
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
    p.add_argument("--backbone", action="append", help="evaluate this backbone instead of the pipeline's own and its watch list (repeatable)")
    p.add_argument("--store", help="artifact store root (directory or s3:// URI) instead of the pipeline's")
    p.set_defaults(func=_run)

    p = sub.add_parser("deploy", help="create one Prefect deployment per pipeline (with its schedule) on the server of PREFECT_API_URL")
    p.add_argument("pipeline", nargs="*", help="only these pipelines (default: all)")
    p.add_argument("--config", default=DEFAULT_FILE)
    p.add_argument("--work-pool", help="register on this work pool (process, docker or kubernetes workers); default: none, for `muppet serve`")
    p.add_argument("--image", help="worker image for docker/kubernetes pools (build it from docker/Dockerfile)")
    p.set_defaults(func=_deploy)

    p = sub.add_parser("serve", help="serve the pipelines' deployments from this machine: UI-triggered and scheduled runs execute here")
    p.add_argument("pipeline", nargs="*", help="only these pipelines (default: all)")
    p.add_argument("--config", default=DEFAULT_FILE)
    p.add_argument("--with-server", action="store_true", help="also start a local Prefect server (unless PREFECT_API_URL is set)")
    p.add_argument("--port", type=int, default=4200, help="port of the local server's API and UI (with --with-server)")
    p.add_argument("--server-log", help="file for the local server's output (with --with-server)")
    p.add_argument("--no-auth", action="store_true", help="start the local server without an auth string: anyone who can reach it may use it (with --with-server; prints a warning)")
    p.add_argument("--limit", type=int, help="flow runs executing at once (default: no limit)")
    p.set_defaults(func=_serve)

    p = sub.add_parser("tasks", help="the task catalog")
    tasks = p.add_subparsers(dest="tasks_command", required=True)
    t = tasks.add_parser("ls", help="list catalog entries")
    t.add_argument("--family", choices=["classification", "regression", "multiple_choice", "span", "summarization"])
    t.add_argument("--json", action="store_true", help="one JSON list (name, family, hub, metric, n, mirror splits)")
    t.set_defaults(func=_tasks_ls)
    t = tasks.add_parser("show", help="one catalog entry as YAML")
    t.add_argument("name")
    t.set_defaults(func=_tasks_show)

    p = sub.add_parser("data", help="the data stage")
    data = p.add_subparsers(dest="data_command", required=True)
    d = data.add_parser("prepare", help="normalize every dataset a pipeline uses into the store")
    d.add_argument("pipeline")
    d.add_argument("--config", default=DEFAULT_FILE)
    d.set_defaults(func=_data_prepare)

    p = sub.add_parser("results", help="print a pipeline's latest leaderboard (or its history) from the store, re-running nothing")
    p.add_argument("pipeline")
    p.add_argument("--format", choices=["csv", "md", "json"], default="csv")
    p.add_argument("--config", default=DEFAULT_FILE)
    p.add_argument("--store", help="store root (directory or s3:// URI); default: the pipeline's")
    p.add_argument("--output", help="write to this file instead of stdout")
    p.add_argument("--backbone", help="only the rows of this backbone label (the part of `model` before ' / ')")
    p.add_argument("--history", action="store_true", help="every run's scores, oldest first, instead of the latest table")
    p.set_defaults(func=_results)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `muppet` console script."""
    args = build_parser().parse_args(argv)
    try:
        use_saved_auth_string()  # a server started here by `muppet serve --with-server` wants its auth string
        return args.func(args)
    except MuppetError as exc:
        for line in str(exc).splitlines():
            print(f"muppet: error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
