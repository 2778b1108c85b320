"""The `muppet` console script: the library's subcommands (``muppet_core.cli``) plus those that
start flows: run, serve, deploy and data prepare."""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import sys
from collections.abc import Iterator

from muppet_core.cli import build_parser, run_command
from muppet_core.pipelines import DEFAULT_FILE, check_store, load_pipeline, load_validated, preflight
from muppet_core.stopping import Stopped, stop_signals

RUNTIME_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "muppet_core",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    # Prefect's temporary server (no PREFECT_API_URL) gets 20 s to start by default: too little on a busy laptop.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def _runtime_defaults() -> None:
    """Environment for Prefect and tokenizers, set before Prefect is imported."""
    for key, value in RUNTIME_DEFAULTS.items():
        os.environ.setdefault(key, value)
    logging.getLogger("muppet_core").setLevel(logging.INFO)


@contextlib.contextmanager
def _stoppable(what: str) -> Iterator[None]:
    """A command that runs flows: Prefect's temporary server (without PREFECT_API_URL) started in a
    session of its own, SIGTERM turned into ``Stopped``; a stop (SIGTERM, Ctrl-C) ends the command with
    one line and status 143 or 130 (``SystemExit``), its work, processes and server stopped."""
    with stop_signals():
        try:
            _runtime_defaults()
            if not os.environ.get("PREFECT_API_URL"):
                from muppet_core.server import start_temporary_server

                start_temporary_server()
            yield
        except (Stopped, KeyboardInterrupt) as exc:
            signal = "SIGTERM" if isinstance(exc, Stopped) else "Ctrl-C"
            print(f"muppet: stopped by {signal}: its work, processes and flow runs were stopped; `{what}` again resumes from the store",
                  file=sys.stderr)
            raise SystemExit(143 if isinstance(exc, Stopped) else 130) from None
        finally:
            gc.freeze()  # the work is done: the interpreter's last collection over torch's and Prefect's objects took seconds at exit


def _run(args: argparse.Namespace) -> int:
    preflight(args.pipeline, args.config, args.backbone, args.store)
    with _stoppable(f"muppet run {args.pipeline}"):
        from flows.reproduce import reproduce

        csv_uri = reproduce(pipeline=args.pipeline, config=args.config, backbones=args.backbone, store=args.store,
                            max_gpu_hours=args.max_gpu_hours)
    print(f"leaderboard: {csv_uri}")
    return 0


def _data_prepare(args: argparse.Namespace) -> int:
    preflight(args.pipeline, args.config)
    with _stoppable(f"muppet data prepare {args.pipeline}"):
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

    pipelines = load_validated(args.config).pipelines
    for name in args.pipeline or sorted(pipelines):  # this machine runs every flow it serves: each store must take its writes
        if name in pipelines:
            check_store(pipelines[name])
    server = None
    if args.with_server and not os.environ.get("PREFECT_API_URL"):
        server = start_local_server(args.port, log=args.server_log, auth=not args.no_auth, database_url=args.database_url)
    try:
        deployments = _deployments(args, module_entrypoint=False)
        from flows.deployments import serve

        serve(deployments, limit=args.limit)
    finally:
        if server:
            server.stop()
    return 0


def build_command() -> argparse.ArgumentParser:
    """The whole `muppet` parser: the library's subcommands and the flows'."""
    parser, sub = build_parser()

    p = sub.add_parser("run", help="run a pipeline end to end (Prefect ephemeral mode unless PREFECT_API_URL is set)")
    p.add_argument("pipeline")
    p.add_argument("--config", default=DEFAULT_FILE)
    p.add_argument("--backbone", action="append", help="evaluate this backbone instead of the pipeline's own and its watch list (repeatable)")
    p.add_argument("--store", help="artifact store root (directory or s3:// URI) instead of the pipeline's")
    p.add_argument("--max-gpu-hours", type=float, help="stop before any work when the run's plan (`muppet plan`) needs more GPU-hours")
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
    p.add_argument("--database-url", help="the local server's database, e.g. postgresql+asyncpg://user@host:5432/prefect (with --with-server; default: SQLite under PREFECT_HOME)")
    p.add_argument("--no-auth", action="store_true", help="start the local server without an auth string: anyone who can reach it may use it (with --with-server; prints a warning)")
    p.add_argument("--limit", type=int, help="flow runs executing at once (default: no limit)")
    p.set_defaults(func=_serve)

    p = sub.add_parser("data", help="the data stage")
    data = p.add_subparsers(dest="data_command", required=True)
    d = data.add_parser("prepare", help="normalize every dataset a pipeline uses into the store")
    d.add_argument("pipeline")
    d.add_argument("--config", default=DEFAULT_FILE)
    d.set_defaults(func=_data_prepare)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `muppet` console script."""
    return run_command(build_command(), argv)


if __name__ == "__main__":
    sys.exit(main())
