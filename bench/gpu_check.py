"""GPU check: pre-finetuning speed and MFU on both engines, 8 fine-tunes sharing the device, GPU losses against the CPU's.

One command on one GPU (sized for at most 8 minutes on an H200: an estimate, not yet run on one),
all through the project's own code (the data stage, ``build_streams``, the training loop ``train``,
the process executor and its device pool):

1. Pre-finetuning of a RoBERTa-base-size encoder (12 layers, hidden 768, vocabulary 50265; built
   from its config with random weights, so nothing is downloaded; the tokenizer is the pipeline's
   backbone's, MiniLM's by default, or ``--backbone``'s, whose weights are not read) on real
   data of the four families (rotten_tomatoes, stsb, commonsenseqa, squad), in bf16, once on the
   DeepSpeed engine with ZeRO-1 and once on the torch engine (autocast); on a GPU, where the loop
   prefetches its batches (pinned memory, copies without blocking), once more on the torch engine
   without it (``torch_no_prefetch``). Per engine: examples/s, real tokens/s and MFU over the updates
   after the first 5 (warm-up: allocation, kernel choice).
2. ``--finetunes`` fine-tunes (rte, mrpc x seeds) at once on the ``process`` executor: each its own
   process, pinned by the device pool to the one GPU and its share of the cores; in bf16.
3. Correctness: 20 fp32 updates (torch engine, dropout off, no TF32) on ``--device`` and the same
   20 on the CPU; ``gpu_cpu_max_rel_diff`` is the largest relative difference of the two loss
   curves (the aim is below 1e-3; with ``--device cpu`` both run on the CPU and it is 0).

A part that raises is reported in its place as ``{"error": ...}`` (its traceback on stderr) and the
others still run, so one call on a lent GPU brings back everything that works; the exit status is
then 1.

FLOPs are counted as 6 x N x T + 12 x L x H x sum(len^2) for each micro-batch: N the encoder's
non-embedding parameters (the embedding tables are lookups, the heads are left out: under 1%),
T its real tokens (the attention mask's), L layers, H the hidden size, ``len`` each sequence's
real length (the forward and backward of attention's two products). ``mfu`` divides the FLOPs of
the real tokens per second by ``--peak-flops`` (790e12, the bf16 matrix rate measured on an H200);
``mfu_computed`` counts every padded position the device computed. Without ``--peak-flops`` on the
CPU, the peak is this run's own fp32 matrix-product rate (``peak_flops_source`` says which). What
bounds MFU here: eager kernels (no compilation), padding, the optimizer step and, per
micro-batch, collation on the CPU and the host-to-device copy; ``matmul_flops`` is the rate of a
plain matrix product on the same device, the ceiling of this run.

    python bench/gpu_check.py [--device cuda] [--json]          # on the GPU machine (docs/scaling.md: GPU check)
    python bench/gpu_check.py --device cpu --tiny --json        # the same code on a tiny model (the tests run it)

The top-level ``examples_per_second``, ``tokens_per_second`` and ``mfu`` are the DeepSpeed ZeRO-1
run's (the pre-finetuning stage's engine), or the torch engine's if that one failed (``headline`` says which).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import common  # noqa: E402  (bench/common.py, beside this script)
from flops import Recorder, matmul_rate, non_embedding_parameters, step_work  # noqa: E402  (bench/flops.py)
from muppet_core.planning import hardware  # noqa: E402

TASKS = ["rotten_tomatoes", "stsb", "commonsenseqa", "squad"]  # one dataset per family
FINETUNE_BENCHMARKS = ["rte", "mrpc"]
H200_BF16_PEAK = 790e12
ROBERTA_BASE = dict(vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
TINY_MODEL = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
# Per size: the pre-finetuning runs (updates, warm-up, micro-batch cap, token budget per micro-batch,
# micro-batches per update, examples per task), the fine-tunes (train and eval examples, batch, how many)
# and the correctness runs (micro-batch, micro-batches per update).
SIZES = {
    "full": dict(steps=30, warmup=5, micro_batch=1024, max_tokens=32768, tasks_per_step=8, max_examples=20000,
                 finetune_train=2000, finetune_eval=500, finetune_batch=32, finetunes=8, check_micro_batch=4, check_tasks_per_step=4),
    "tiny": dict(steps=4, warmup=1, micro_batch=4, max_tokens=None, tasks_per_step=4, max_examples=48,
                 finetune_train=16, finetune_eval=16, finetune_batch=8, finetunes=2, check_micro_batch=2, check_tasks_per_step=2),
}
CHECK_UPDATES = 20  # fp32 updates compared between the device and the CPU
MAX_LENGTH = 128  # tokens per sequence (per question-choice pair), as the pipelines train


def significant(x: float, digits: int = 4) -> float:
    """``x`` to ``digits`` significant digits (an MFU of a tiny model on a fast CPU can be 1e-4)."""
    return float(f"{x:.{digits}g}")


def save_backbone(path: Path, tokenizer, shape: dict, dropout: float) -> str:
    """A RoBERTa encoder of ``shape`` with random weights (seed 0) and ``tokenizer``, saved as safetensors."""
    import torch
    from transformers import RobertaConfig, RobertaModel

    torch.manual_seed(0)
    config = RobertaConfig(**shape, max_position_embeddings=514, type_vocab_size=2, pad_token_id=tokenizer.pad_token_id,
                           hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    RobertaModel(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return str(path)


@dataclass
class Setup:
    """What every part of the check shares: the device, the sizes, the encoders, the data and the encoded streams."""

    device: Any  # torch.device
    size: dict
    shape: dict
    peak: float
    tokenizer: Any
    backbone: str  # the encoder directory (dropout 0.1)
    exact: str  # the same encoder without dropout, for the correctness runs
    store: Any  # ArtifactStore
    data: dict
    base: dict  # the pre-finetuning settings every run starts from
    streams: dict

    def train(self, encoder_dir: str, callbacks: list, **update) -> tuple[dict, Any]:
        """The training loop over the four tasks' streams with the base settings and ``update``: its summary and the model."""
        import torch

        from muppet_core.config import PrefinetuneConfig
        from muppet_core.models.backbone import default_pooling, load_encoder
        from muppet_core.families.build import build_multitask_model
        from muppet_core.tasks.catalog import get_task
        from muppet_core.training.loop import train
        from muppet_core.training.settings import prefinetune_settings

        config = PrefinetuneConfig.model_validate({**self.base, **update})
        torch.manual_seed(config.seed)
        encoder, _ = load_encoder(encoder_dir)
        model = build_multitask_model(encoder, [get_task(t) for t in TASKS], config.pooling or default_pooling(encoder_dir))
        return train(model, self.streams, prefinetune_settings(config, None), self.tokenizer.pad_token_id, callbacks), model


def engine_figures(s: Setup, engine: str, zero_stage: int, prefetch: bool | None = None) -> dict:
    """Pre-finetuning in bf16 on ``engine`` (``prefetch``: the loop's, None its default): steady examples/s, tokens/s, MFU and what explains them."""
    import torch

    cuda, recorder, warmup = s.device.type == "cuda", Recorder(), s.size["warmup"]
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    summary, model = s.train(s.backbone, [recorder], engine=engine, zero_stage=zero_stage, precision="bf16", device=s.device.type,
                             steps=s.size["steps"], micro_batch_size=s.size["micro_batch"], max_tokens_per_batch=s.size["max_tokens"],
                             tasks_per_step=s.size["tasks_per_step"], prefetch=prefetch)
    memory = round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None
    del model
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    work = step_work(recorder, s.streams, s.tokenizer.pad_token_id, s.shape["non_embedding_parameters"], s.shape["num_hidden_layers"], s.shape["hidden_size"])
    rates = {k: recorder.timer.steady_rate(v, warmup) for k, v in work.items()}
    return {
        "examples_per_second": round(rates["examples"], 2), "tokens_per_second": round(rates["tokens"], 1),
        "mfu": significant(rates["flops"] / s.peak), "mfu_computed": significant(rates["flops_computed"] / s.peak),
        "achieved_flops": round(rates["flops"], 1), "padding_efficiency": round(sum(work["tokens"]) / sum(work["computed"]), 4),
        "updates": summary["steps"], "examples": int(sum(work["examples"])),
        "seconds_per_update": round(sum(recorder.timer.laps[warmup:]) / (summary["steps"] - warmup), 4),
        "final_loss": round(summary["final_loss"], 4), "peak_memory_gib": memory,
    }


def finetune_figures(s: Setup, pipeline, count: int) -> dict:
    """``count`` fine-tunes of the encoder at once on the process executor, sharing the device: wall time and throughput."""
    from fanout import fan_out
    from muppet_core.config import FinetuneConfig
    from muppet_core.models.backbone import base_variant
    from muppet_core.training.finetune import plan_runs
    from muppet_core.training.pinning import gpu_count, plan_devices, usable_cores

    config = FinetuneConfig.model_validate({
        **pipeline.finetune.model_dump(), "benchmarks": FINETUNE_BENCHMARKS, "seeds": list(range(-(-count // len(FINETUNE_BENCHMARKS)))),
        "learning_rates": pipeline.finetune.learning_rates[:1], "train_fractions": [], "max_train_examples": s.size["finetune_train"],
        "max_eval_examples": s.size["finetune_eval"], "batch_size": s.size["finetune_batch"], "executor": "process", "concurrency": count,
        "device": s.device.type, "precision": "bf16", "checkpoint_every": None,
    })
    runs = plan_runs(config, [base_variant(s.backbone, Path(s.store.root) / "cache")])[:count]
    seconds, records = fan_out(runs, s.data, config, s.store)
    return {
        "runs": len(runs), "concurrency": count, "seconds": round(seconds, 2), "failed": sorted(n for n, r in records.items() if not r.ok),
        "pinned_to": [d.describe() for d in plan_devices(count, gpu_count(), usable_cores())],  # the executor's pool, as it plans it
        "examples_per_second": round(sum(r.examples_seen or 0 for r in records.values()) / seconds, 2),
        "mean_run_seconds": round(sum(r.wall_seconds for r in records.values()) / len(records), 2),
    }


def loss_curves(s: Setup) -> dict:
    """The same fp32 updates (torch engine, no dropout) on the device and on the CPU: both loss curves and their largest relative difference."""
    check = dict(engine="torch", precision="fp32", steps=CHECK_UPDATES, micro_batch_size=s.size["check_micro_batch"],
                 tasks_per_step=s.size["check_tasks_per_step"], max_tokens_per_batch=None)
    on_device, on_cpu = ([h["loss"] for h in s.train(s.exact, [], device=where, **check)[0]["history"]] for where in (s.device.type, "cpu"))
    diff = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(on_device, on_cpu))
    return {"updates": len(on_cpu), "device_losses": on_device, "cpu_losses": on_cpu, "max_rel_diff": diff, "within_1e-3": diff < 1e-3}


def guarded(part, *args) -> dict:
    """``part(*args)``, or ``{"error": ...}`` when it raises (its traceback on stderr): one broken part leaves the others' figures."""
    from muppet_core.errors import first_line

    try:
        return part(*args)
    except Exception as exc:  # noqa: BLE001  (reported in the figures; the exit status says it failed)
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {first_line(exc)}"}


def record(figures: dict[str, Any], kind: str) -> Path:
    """Store ``figures`` as the last result for ``kind``, where ``muppet plan`` reads it (``planning.hardware.results_dir``)."""
    folder = hardware.results_dir(Path(__file__).resolve().parents[1] / "pipelines.yaml")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"gpu_check-{kind}.json"
    path.write_text(json.dumps(figures, indent=1) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the check on the command line `argv` (default: sys.argv); returns the exit status."""
    parser = common.parser(__doc__)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="where the check trains (the correctness run compares it with the CPU)")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer encoder of hidden 32 and a few updates: the same code in seconds")
    parser.add_argument("--peak-flops", type=float, default=None, help="the device's peak FLOP/s for MFU (default: 790e12 on CUDA, an H200's bf16; this run's fp32 matmul rate on the CPU)")
    parser.add_argument("--finetunes", type=int, default=None, help="fine-tunes sharing the device at once (default: 8, tiny: 2)")
    parser.add_argument("--record", action="store_true",
                        help="also store the figures as bench/results/gpu_check-KIND.json ($MUPPET_BENCH_RESULTS), the rate `muppet plan --gpu KIND` uses")
    args = parser.parse_args(argv)
    clock = common.Timer().start()

    import deepspeed
    import torch
    import transformers

    from muppet_core.artifacts.store import ArtifactStore
    from muppet_core.data.stage import data_stage
    from muppet_core.models.backbone import load_tokenizer
    from muppet_core.models.sources import resolve_backbone
    from muppet_core.training.engine import init_distributed
    from muppet_core.training.streams import build_streams

    size = SIZES["tiny" if args.tiny else "full"]
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this machine has no CUDA device (use --device cpu)")
    torch.set_float32_matmul_precision("highest")  # fp32 stays fp32 (no TF32) for the comparison with the CPU
    matmul = matmul_rate(device, *((torch.bfloat16, 8192) if device.type == "cuda" else (torch.float32, 256)))
    peak = args.peak_flops or (H200_BF16_PEAK if device.type == "cuda" else matmul)
    peak_source = "--peak-flops" if args.peak_flops else ("790e12, an H200's bf16 matrix rate as measured" if device.type == "cuda" else "this CPU's fp32 matrix product, measured in this run")
    pipeline = common.pipeline(args)
    tokenizer = load_tokenizer(resolve_backbone(pipeline.backbone, Path(tempfile.gettempdir())))  # the backbone lends its tokenizer only
    init_distributed()  # DeepSpeed's process group (nccl on CUDA, gloo on the CPU); world size 1

    with tempfile.TemporaryDirectory(prefix="muppet-gpu-check-") as tmp:
        store = ArtifactStore(str(Path(tmp) / "store"))
        shape = TINY_MODEL if args.tiny else ROBERTA_BASE
        backbone = save_backbone(Path(tmp) / "encoder", tokenizer, shape, dropout=0.1)
        exact = save_backbone(Path(tmp) / "encoder-no-dropout", tokenizer, shape, dropout=0.0)
        data = {t: data_stage(t, pipeline.data, store) for t in TASKS + FINETUNE_BENCHMARKS}
        base = {**pipeline.prefinetune.model_dump(), "tasks": TASKS, "max_train_examples": size["max_examples"], "checkpoint_every": None,
                "task_counts": [], "max_length": MAX_LENGTH}
        streams, _ = build_streams(TASKS, {t: store.fetch("data", data[t].key) for t in TASKS}, tokenizer, MAX_LENGTH, size["max_examples"], base["seed"])
        s = Setup(device, size, {**shape, "non_embedding_parameters": non_embedding_parameters(backbone)}, peak, tokenizer, backbone, exact, store, data, base, streams)
        sections = {"setup": clock.lap()}
        correctness = guarded(loss_curves, s)
        sections["correctness"] = clock.lap()
        engines = {}
        # On a GPU the loop prefetches its batches (pinned, copied without blocking); the torch engine runs once more without.
        without = (("torch_no_prefetch", "torch", 0, False),) if device.type == "cuda" else ()
        for name, engine, zero, prefetch in (("deepspeed_zero1", "deepspeed", 1, None), ("torch", "torch", 0, None), *without):
            engines[name] = guarded(engine_figures, s, engine, zero, prefetch)
            sections[name] = clock.lap()
        finetunes = guarded(finetune_figures, s, pipeline, args.finetunes or size["finetunes"])
        sections["finetunes"] = clock.lap()
    torch.distributed.destroy_process_group()  # nothing left for the process group's teardown to say after the JSON line

    headline = next((n for n in engines if "error" not in engines[n]), None)
    top = engines[headline] if headline else {}
    figures = {
        "device": args.device, "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "tiny": args.tiny,
        "examples_per_second": top.get("examples_per_second"), "tokens_per_second": top.get("tokens_per_second"), "mfu": top.get("mfu"),
        "headline": headline, "gpu_cpu_max_rel_diff": correctness.get("max_rel_diff"),
        "peak_flops": peak, "peak_flops_source": peak_source, "matmul_flops": round(matmul, 1),
        "model": {**s.shape, "max_length": MAX_LENGTH}, "tokenizer": pipeline.backbone, "tasks": TASKS,
        "prefinetune": engines, "finetunes": finetunes, "correctness": correctness,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "deepspeed": deepspeed.__version__},
        "seconds": round(clock.seconds, 1), "section_seconds": {k: round(v, 1) for k, v in sections.items()},
    }
    rows = [(f"{name}: examples/s, tokens/s, MFU, MFU of computed positions", e.get("error") or f"{e['examples_per_second']}, {e['tokens_per_second']}, {e['mfu']}, {e['mfu_computed']}")
            for name, e in engines.items()]
    rows += [(f"fine-tunes at once: seconds, examples/s, failed", finetunes.get("error") or f"{finetunes['seconds']}, {finetunes['examples_per_second']}, {len(finetunes['failed'])}"),
             (f"{CHECK_UPDATES} fp32 updates, {args.device} against cpu: largest relative loss difference", correctness.get("error") or f"{correctness['max_rel_diff']:.3g}"),
             ("peak FLOP/s (source), plain matmul FLOP/s", f"{peak:.3g} ({peak_source}), {matmul:.3g}"), ("wall seconds", figures["seconds"])]
    common.emit(f"GPU check on {figures['device_name']}" + "\n" + common.table(rows), figures, args.json)
    if args.record and top.get("mfu"):
        print(f"recorded: {record(figures, 'cpu' if device.type == 'cpu' else hardware.local_kind())}", file=sys.stderr)
    return 1 if any("error" in part for part in (*engines.values(), finetunes, correctness)) else 0


if __name__ == "__main__":
    from muppet_core.tracking import without_mlflow

    with without_mlflow():  # DeepSpeed would import it (seconds) for nothing: nothing is tracked here
        sys.exit(main())
