"""Memory per GPU of a training run: weights, gradients and optimizer state under its engine, precision and ZeRO
stage (the ZeRO paper's accounting), activations of one micro-batch (Korthikanti et al. 2022, without recomputation:
s b h (34 + 5 a s / h) bytes per layer in 16 bits), and the runtime's own share (an assumption per device kind)."""

from __future__ import annotations

from dataclasses import dataclass

from muppet_core.planning.shapes import Shape

GIB = 1024**3
FP32_LOGIT_BYTES = 8
"""Bytes per logit of a language-model head: fp32 logits and their gradient."""


@dataclass(frozen=True)
class Training:
    """What the memory of a training process depends on besides the model."""

    engine: str
    precision: str
    zero_stage: int
    world: int
    sequences: int
    """Sequences in one micro-batch (examples x choices of the widest task)."""
    length: int
    """Tokens per sequence at most (max_length)."""
    target_length: int = 0
    """Summary tokens of a seq2seq micro-batch (0: no language-model head in the mix)."""


def state_bytes_per_param(t: Training) -> dict[str, float]:
    """Bytes per parameter of weights, gradients and optimizer state on each rank.

    DeepSpeed in bf16/fp16 keeps 16-bit weights and gradients and fp32 master weights, momentum and variance (2 + 2 + 12);
    in fp32, 4 + 4 + 8. The torch engine keeps fp32 weights whatever autocast computes in, and shards nothing.
    ZeRO-1 shards the optimizer state over the ranks, ZeRO-2 the gradients too."""
    half = t.engine == "deepspeed" and t.precision in ("bf16", "fp16")
    weights, grads, optim = (2.0, 2.0, 12.0) if half else (4.0, 4.0, 8.0)
    stage = t.zero_stage if t.engine == "deepspeed" else 0
    if stage >= 1:
        optim /= t.world
    if stage >= 2:
        grads /= t.world
    return {"weights": weights, "gradients": grads, "optimizer": optim}


def activation_bytes(shape: Shape, t: Training, checkpointing: bool = False) -> float:
    """Activations kept for the backward of one micro-batch; with activation checkpointing, each layer's input only."""
    scale = 1 if t.precision in ("bf16", "fp16") else 2
    s, b, h = t.length, t.sequences, shape.hidden
    per_layer = 2 * s * b * h if checkpointing else s * b * h * (34 + 5 * shape.heads * s / h)
    logits = t.sequences * t.target_length * shape.vocab * FP32_LOGIT_BYTES
    return shape.layers * per_layer * scale + logits


def memory_gib(shape: Shape, params: int, t: Training, runtime_gib: float, checkpointing: bool = False) -> dict[str, float]:
    """GiB per rank by part, and their ``total``."""
    parts = {k: params * v / GIB for k, v in state_bytes_per_param(t).items()}
    parts["activations"] = activation_bytes(shape, t, checkpointing) / GIB
    parts["runtime"] = runtime_gib
    parts["total"] = sum(parts.values())
    return parts


def advice(shape: Shape, params: int, t: Training, runtime_gib: float, limit_gib: float, micro_batch: int) -> list[str]:
    """What would make the run fit ``limit_gib``: a smaller micro-batch, a higher ZeRO stage, activation checkpointing."""
    out = []
    per_example = t.sequences // max(micro_batch, 1)
    for mb in (micro_batch // 2**i for i in range(1, 12)):
        if mb < 1:
            break
        smaller = Training(t.engine, t.precision, t.zero_stage, t.world, mb * per_example, t.length, t.target_length)
        if (total := memory_gib(shape, params, smaller, runtime_gib)["total"]) <= limit_gib:
            out.append(f"micro_batch_size {mb} ({total:.1f} GiB; raise tasks_per_step or accept fewer examples per update)")
            break
    if t.engine != "deepspeed":
        higher = Training("deepspeed", t.precision if t.precision != "fp32" else "bf16", 2, t.world, t.sequences, t.length, t.target_length)
        out.append(f"engine deepspeed, zero_stage 2 ({memory_gib(shape, params, higher, runtime_gib)['total']:.1f} GiB)")
    elif t.zero_stage < 2:
        higher = Training(t.engine, t.precision, 2, t.world, t.sequences, t.length, t.target_length)
        out.append(f"zero_stage 2 ({memory_gib(shape, params, higher, runtime_gib)['total']:.1f} GiB)")
    checkpointed = memory_gib(shape, params, t, runtime_gib, checkpointing=True)["total"]
    out.append(f"activation checkpointing ({checkpointed:.1f} GiB; not a pipelines.yaml setting yet)")
    return out
