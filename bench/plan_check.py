"""The plan against this machine: predicted and measured wall time of a pipeline's pre-finetune and of its whole run,
and predicted and measured peak memory (RSS) of the pre-finetune's training process.

The prediction is `muppet plan PIPELINE --gpu cpu`: the CPU's rate is the last ``bench/gpu_check.py --device cpu
--record`` result (its MFU of this CPU's matrix-product rate), its runtime memory ``hardware.yaml``'s assumption.
The data stage runs first, so the plan reads its datasets' length stats. Measured: the pre-finetune stage alone
(``prefinetune_stage``, whose training worker is this process's only child: its peak RSS is ``RUSAGE_CHILDREN``'s), then, with ``--run``, ``muppet run PIPELINE`` in a
fresh process with a fresh store and Prefect home (its wall time includes Prefect's temporary server).

    python bench/plan_check.py --pipeline smoke --backbone build/smoke-backbone [--run] [--json]
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import common  # noqa: E402  (bench/common.py, beside this script)


def _ratio(predicted: float | None, measured: float) -> float | None:
    return None if predicted is None else round(predicted / measured, 3)


def prepare(pipeline, store, tmp: Path) -> tuple:
    """The base variant and the data stage of every dataset of the pipeline, into ``store`` (their length stats are what the plan reads)."""
    from muppet_core.data.stage import data_stage
    from muppet_core.models.backbone import base_variant

    base = base_variant(pipeline.backbone, tmp / "cache")
    return base, {t: data_stage(t, pipeline.data, store, base) for t in pipeline.data_tasks()}


def measure_prefinetune(pipeline, store, base, data) -> tuple[float, float]:
    """Wall seconds and the training worker's peak RSS (GiB) of the pipeline's pre-finetune."""
    from muppet_core.training.prefinetune import prefinetune_stage

    clock = common.Timer().start()
    prefinetune_stage(pipeline.prefinetune, base, data, store, lambda line: None)
    seconds = clock.lap()
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB on Linux


def measure_run(name: str, backbone: str | None, tmp: Path) -> float:
    """Wall seconds of ``muppet run NAME`` in a fresh process, store, cache and Prefect home."""
    env = {**os.environ, "PREFECT_HOME": str(tmp / "prefect"), "MUPPET_STORE": str(tmp / "run-store"), "MUPPET_CACHE": str(tmp / "run-cache"),
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300"}
    command = [sys.executable, "-m", "flows.cli", "run", name] + (["--backbone", backbone] if backbone else [])
    clock = common.Timer().start()
    done = subprocess.run(command, cwd=common.REPO, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"muppet run {name} failed: {done.stderr.strip().splitlines()[-1:]}")
    return clock.lap()


def main(argv: list[str] | None = None) -> int:
    """Run the check on the command line ``argv`` (default: sys.argv); returns the exit status."""
    parser = common.parser(__doc__)
    parser.add_argument("--run", action="store_true", help="also time `muppet run PIPELINE` end to end")
    args = parser.parse_args(argv)
    from muppet_core.artifacts.store import ArtifactStore
    from muppet_core.planning.run import make_plan

    pipeline = common.pipeline(args)
    with tempfile.TemporaryDirectory(prefix="muppet-plan-check-") as tmp:
        store = ArtifactStore(str(Path(tmp) / "store"))
        base, data = prepare(pipeline, store, Path(tmp))
        plan = make_plan(args.pipeline, pipeline, store, common.PIPELINES_FILE, gpus=1, kind="cpu")
        pre = plan.prefinetune
        # `muppet run` starts from an empty store: its data stage normalizes every dataset the plan counted rows of.
        rows = sum(sum(r.rows.values()) for r in plan.datasets if r.rows)
        predicted = {"prefinetune_s": pre["work"].wall_s, "run_s": plan.wall_s + rows / plan.device.fixed_s["data_rows_per_s"],
                     "prefinetune_rss_gib": pre["memory"]["gib"]["total"]}
        seconds, rss = measure_prefinetune(pipeline, store, base, {t: data[t] for t in pipeline.prefinetune.tasks})
        measured = {"prefinetune_s": seconds, "prefinetune_rss_gib": rss}
        if args.run:
            measured["run_s"] = measure_run(args.pipeline, args.backbone, Path(tmp))
    figures = {"pipeline": args.pipeline, "device_rate": plan.device.rate_source, "flops_per_second": plan.device.flops_per_second,
               "memory_parts_gib": pre["memory"]["gib"], "predicted": predicted, "measured": measured,
               "ratio": {k: _ratio(predicted.get(k), v) for k, v in measured.items()}}
    rows = [(k, f"{predicted.get(k):.4g}" if predicted.get(k) is not None else "unknown", f"{v:.4g}", figures["ratio"][k]) for k, v in measured.items()]
    common.emit(f"The plan of {args.pipeline} on this CPU ({plan.device.flops_per_second:.3g} FLOP/s: {plan.device.rate_source})\n"
                + common.table(rows, ["figure", "predicted", "measured", "predicted / measured"]), figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
