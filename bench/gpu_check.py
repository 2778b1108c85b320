"""GPU check: pre-finetuning speed and MFU on both engines, 8 fine-tunes sharing the device, GPU losses against the CPU's.

One command on one GPU (an H200: about 4 minutes, at most 8), all through the project's own code
(the data stage, ``build_streams``, the training loop ``train``, the process executor and its
device pool):

1. Pre-finetuning of a RoBERTa-base-size encoder (12 layers, hidden 768, vocabulary 50265; built
   from its config with random weights, so nothing is downloaded; the tokenizer is the pipeline's
   backbone's, MiniLM's by default, or ``--backbone``'s, whose weights are not read) on real
   data of the four families (rotten_tomatoes, stsb, commonsenseqa, squad), in bf16, once on the
   DeepSpeed engine with ZeRO-1 and once on the torch engine (autocast). Per engine: examples/s,
   real tokens/s and MFU over the updates after ``--warmup``.
2. ``--finetunes`` fine-tunes (rte, mrpc x seeds) at once on the ``process`` executor: each its own
   process, pinned by the device pool to the one GPU and its share of the cores.
3. Correctness: 20 fp32 updates (torch engine, dropout off) on ``--device`` and the same 20 on the
   CPU; ``gpu_cpu_max_rel_diff`` is the largest relative difference of the two loss curves (the
   aim is below 1e-3; with ``--device cpu`` both run on the CPU and it is 0).

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

    python bench/gpu_check.py [--device cuda] [--json]          # on the GPU machine (README: GPU check)
    python bench/gpu_check.py --device cpu --tiny --json        # the same code on a tiny model (the tests run it)

The top-level ``examples_per_second``, ``tokens_per_second`` and ``mfu`` are the DeepSpeed ZeRO-1
run's (the pre-finetuning stage's engine).
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import common  # noqa: E402  (bench/common.py, beside this script)
from muppet_core.training.callbacks import Callback  # noqa: E402

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
                 finetune_train=2000, finetune_eval=500, finetune_batch=32, finetunes=8, check_micro_batch=8, check_tasks_per_step=4),
    "tiny": dict(steps=4, warmup=1, micro_batch=4, max_tokens=None, tasks_per_step=4, max_examples=48,
                 finetune_train=16, finetune_eval=16, finetune_batch=8, finetunes=2, check_micro_batch=2, check_tasks_per_step=2),
}
CHECK_UPDATES = 20  # fp32 updates compared between the device and the CPU


class Recorder(Callback):
    """Laps a ``common.Timer`` at each update's end and records the micro-batches (task, example indices) of each update."""

    def __init__(self) -> None:
        self.timer, self.steps = common.Timer(), []

    def on_train_start(self, total_steps: int, start_step: int = 0) -> None:
        self.timer.start()

    def on_micro_batch(self, step: int, task: str, indices: list[int]) -> None:
        if len(self.steps) <= step:
            self.steps.append([])
        self.steps[step].append((task, list(indices)))

    def on_step_end(self, step: int, logs: dict) -> None:
        self.timer.lap()  # after the loop's one loss read-out per update, which waits for the device


def step_work(recorder: Recorder, streams, pad_id: int, params: int, layers: int, hidden: int) -> dict[str, list[float]]:
    """Per recorded update: examples, real tokens, computed positions, FLOPs of the real tokens and of every computed position.

    The micro-batches are collated again, as the loop collated them, after the timed run."""
    work: dict[str, list[float]] = {k: [] for k in ("examples", "tokens", "computed", "flops", "flops_computed")}
    for micro_batches in recorder.steps:
        totals = dict.fromkeys(work, 0.0)
        for task, indices in micro_batches:
            stream = streams[task]
            batch = stream.family.collate([stream.features[i] for i in indices], pad_id)
            mask = batch["attention_mask"]
            mask = mask.reshape(-1, mask.shape[-1])
            lengths = mask.sum(-1).double()
            totals["examples"] += len(batch["labels"])
            totals["tokens"] += float(lengths.sum())
            totals["computed"] += mask.numel()
            totals["flops"] += 6 * params * float(lengths.sum()) + 12 * layers * hidden * float((lengths**2).sum())
            totals["flops_computed"] += 6 * params * mask.numel() + 12 * layers * hidden * mask.shape[0] * mask.shape[1] ** 2
        for k, v in totals.items():
            work[k].append(v)
    return work


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


def matmul_rate(device, dtype, n: int) -> float:
    """FLOP/s of an n x n x n matrix product on ``device`` (the mean of 10 after 3 warm-ups)."""
    import torch

    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    sync()
    return 10 * 2 * n**3 / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    """Run the check on the command line `argv` (default: sys.argv); returns the exit status."""
    parser = common.parser(__doc__)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="where the check trains (the correctness run compares it with the CPU)")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer encoder of hidden 32 and a few updates: the same code in seconds")
    parser.add_argument("--peak-flops", type=float, default=None, help="the device's peak FLOP/s for MFU (default: 790e12 on CUDA, an H200's bf16; this run's fp32 matmul rate on the CPU)")
    parser.add_argument("--finetunes", type=int, default=None, help="fine-tunes sharing the device at once (default: 8, tiny: 2)")
    args = parser.parse_args(argv)
    clock = common.Timer().start()

    import torch
    import deepspeed
    import transformers

    from fanout import fan_out
    from muppet_core.artifacts.store import ArtifactStore
    from muppet_core.config import FinetuneConfig, PrefinetuneConfig
    from muppet_core.data.stage import data_stage
    from muppet_core.models.backbone import base_variant, default_pooling, load_encoder, load_tokenizer, resolve_backbone
    from muppet_core.models.multitask import build_multitask_model
    from muppet_core.tasks.catalog import get_task
    from muppet_core.training.engine import init_distributed
    from muppet_core.training.finetune import plan_runs
    from muppet_core.training.loop import train
    from muppet_core.training.pinning import gpu_count, plan_devices, usable_cores
    from muppet_core.training.settings import prefinetune_settings
    from muppet_core.training.streams import build_streams

    size = SIZES["tiny" if args.tiny else "full"]
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this machine has no CUDA device (use --device cpu)")
    torch.set_float32_matmul_precision("highest")  # fp32 stays fp32 (no TF32) for the comparison with the CPU
    matmul = matmul_rate(device, torch.bfloat16 if device.type == "cuda" else torch.float32, 256 if args.tiny else 8192)
    peak = args.peak_flops or (H200_BF16_PEAK if device.type == "cuda" else matmul)
    peak_source = "--peak-flops" if args.peak_flops else ("H200 bf16 matrix rate, measured" if device.type == "cuda" else "this CPU's fp32 matrix product, measured in this run")
    pipeline = common.pipeline(args)
    tokenizer = load_tokenizer(resolve_backbone(pipeline.backbone, Path(tempfile.gettempdir())))  # the backbone lends its tokenizer only
    shape = TINY_MODEL if args.tiny else ROBERTA_BASE
    init_distributed()  # DeepSpeed's process group (nccl on CUDA, gloo on the CPU); world size 1

    with tempfile.TemporaryDirectory(prefix="muppet-gpu-check-") as tmp:
        store = ArtifactStore(str(Path(tmp) / "store"))
        backbone = save_backbone(Path(tmp) / "encoder", tokenizer, shape, dropout=0.1)
        exact = save_backbone(Path(tmp) / "encoder-no-dropout", tokenizer, shape, dropout=0.0)
        data = {t: data_stage(t, pipeline.data, store) for t in TASKS + FINETUNE_BENCHMARKS}
        base = pipeline.prefinetune.model_dump()
        base.update(tasks=TASKS, max_train_examples=size["max_examples"], checkpoint_every=None, task_counts=[], max_length=128)
        streams, _ = build_streams(TASKS, {t: store.fetch("data", data[t].key) for t in TASKS}, tokenizer, 128, size["max_examples"], base["seed"])

        def run(encoder_dir: str, callbacks: list, **update) -> tuple[dict, torch.nn.Module]:
            config = PrefinetuneConfig.model_validate({**base, **update})
            torch.manual_seed(config.seed)
            encoder, _ = load_encoder(encoder_dir)
            model = build_multitask_model(encoder, [get_task(t) for t in TASKS], config.pooling or default_pooling(encoder_dir))
            return train(model, streams, prefinetune_settings(config, None), tokenizer.pad_token_id, callbacks), model

        sections = {"setup": clock.lap()}
        engines = {}
        for name, engine, zero in (("deepspeed_zero1", "deepspeed", 1), ("torch", "torch", 0)):
            recorder = Recorder()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            summary, model = run(backbone, [recorder], engine=engine, zero_stage=zero, precision="bf16", device=args.device, steps=size["steps"],
                                 micro_batch_size=size["micro_batch"], max_tokens_per_batch=size["max_tokens"], tasks_per_step=size["tasks_per_step"])
            layers = model.encoder.encoder
            params = sum(p.numel() for p in layers.parameters())
            work = step_work(recorder, streams, tokenizer.pad_token_id, params, shape["num_hidden_layers"], shape["hidden_size"])
            rates = {k: recorder.timer.steady_rate(v, size["warmup"]) for k, v in work.items()}
            engines[name] = {
                "examples_per_second": round(rates["examples"], 2), "tokens_per_second": round(rates["tokens"], 1),
                "mfu": round(rates["flops"] / peak, 5), "mfu_computed": round(rates["flops_computed"] / peak, 5),
                "achieved_flops": round(rates["flops"], 1), "padding_efficiency": round(sum(work["tokens"]) / sum(work["computed"]), 4),
                "updates": summary["steps"], "examples": int(sum(work["examples"])), "seconds_per_update": round(sum(recorder.timer.laps[size["warmup"]:]) / (summary["steps"] - size["warmup"]), 4),
                "final_loss": round(summary["final_loss"], 4),
                "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
            }
            del model
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
            sections[name] = clock.lap()

        count = args.finetunes or size["finetunes"]
        finetune = FinetuneConfig.model_validate({
            **pipeline.finetune.model_dump(), "benchmarks": FINETUNE_BENCHMARKS, "seeds": list(range(-(-count // len(FINETUNE_BENCHMARKS)))),
            "learning_rates": pipeline.finetune.learning_rates[:1], "train_fractions": [], "max_train_examples": size["finetune_train"],
            "max_eval_examples": size["finetune_eval"], "batch_size": size["finetune_batch"], "executor": "process", "concurrency": count,
            "threads": None, "device": args.device, "precision": "bf16", "checkpoint_every": None,
        })
        runs = plan_runs(finetune, [base_variant(backbone, Path(tmp) / "cache")])[:count]
        seconds, records = fan_out(runs, data, finetune, store)
        failed = sorted(n for n, r in records.items() if not r.ok)
        finetunes = {
            "runs": len(runs), "concurrency": count, "seconds": round(seconds, 2), "failed": failed,
            "pinned_to": [d.describe() for d in plan_devices(count, gpu_count(), usable_cores())],  # the executor's pool, as it plans it
            "examples_per_second": round(sum(r.examples_seen or 0 for r in records.values()) / seconds, 2),
            "mean_run_seconds": round(sum(r.wall_seconds for r in records.values()) / len(records), 2),
        }
        sections["finetunes"] = clock.lap()

        check = dict(engine="torch", precision="fp32", steps=CHECK_UPDATES, micro_batch_size=size["check_micro_batch"], tasks_per_step=size["check_tasks_per_step"], max_tokens_per_batch=None)
        curves = {where: [h["loss"] for h in run(exact, [], device=where, **check)[0]["history"]] for where in (args.device, "cpu")}
    sections["correctness"] = clock.lap()
    on_device, on_cpu = curves[args.device], curves["cpu"]
    diff = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(on_device, on_cpu))

    top = engines["deepspeed_zero1"]
    figures = {
        "device": args.device, "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "tiny": args.tiny,
        "examples_per_second": top["examples_per_second"], "tokens_per_second": top["tokens_per_second"], "mfu": top["mfu"],
        "gpu_cpu_max_rel_diff": diff, "peak_flops": peak, "peak_flops_source": peak_source, "matmul_flops": round(matmul, 1),
        "model": {**shape, "non_embedding_parameters": params, "max_length": 128}, "tokenizer": pipeline.backbone, "tasks": TASKS,
        "prefinetune": engines, "finetunes": finetunes,
        "correctness": {"updates": len(on_cpu), "device_losses": on_device, "cpu_losses": on_cpu, "max_rel_diff": diff, "within_1e-3": diff < 1e-3},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "deepspeed": deepspeed.__version__},
        "seconds": round(clock.seconds, 1), "section_seconds": {k: round(v, 1) for k, v in sections.items()},
    }
    rows = [(f"{name}: examples/s, tokens/s, MFU, MFU of computed positions", f"{e['examples_per_second']}, {e['tokens_per_second']}, {e['mfu']}, {e['mfu_computed']}")
            for name, e in engines.items()]
    rows += [(f"{finetunes['runs']} fine-tunes at once: seconds, examples/s, failed", f"{finetunes['seconds']}, {finetunes['examples_per_second']}, {len(failed)}"),
             (f"{len(on_cpu)} fp32 updates, {args.device} against cpu: largest relative loss difference", f"{diff:.3g}"),
             ("peak FLOP/s (source), plain matmul FLOP/s", f"{peak:.3g} ({peak_source}), {matmul:.3g}"), ("wall seconds", figures["seconds"])]
    common.emit(f"GPU check on {figures['device_name']}" + "\n" + common.table(rows), figures, args.json)
    return 0


if __name__ == "__main__":
    from muppet_core.tracking import without_mlflow

    with without_mlflow():  # DeepSpeed would import it (seconds) for nothing: nothing is tracked here
        sys.exit(main())
