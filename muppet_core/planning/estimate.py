"""The plan of a pipeline's run: per stage, what it reads, computes, takes and writes (see ``Plan``).

Tokens of pre-finetuning are updates x micro-batches per update x examples per micro-batch x the mix's mean tokens per
example (each task weighted as the sampling draws it, its length the median of its training split, cut at
``max_length``, times its sequences per example); FLOPs follow ``planning.flops``; seconds are FLOPs / (devices x the
device's rate). A seq2seq model (BART) reads an input through both stacks; a summary's target tokens go through the
decoder (half the layers, taken as half the parameters) and the language-model head.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import PipelineConfig
from muppet_core.families import get_family
from muppet_core.models.backbone import Variant
from muppet_core.planning.flops import forward_flops, training_flops
from muppet_core.planning.hardware import Device
from muppet_core.planning.inputs import Holdings, TaskRows, store_holdings, task_rows
from muppet_core.planning.memory import GIB, Training, advice, memory_gib
from muppet_core.planning.shapes import Shape, backbone_shape
from muppet_core.tasks.catalog import get_task
from muppet_core.training.finetune import plan_runs

RECORD_BYTES = 8 * 1024
"""A fine-tune's stored output, its result record (an assumption where the store holds none to measure)."""
CHECKPOINT_STATE_BYTES = {"deepspeed": 14, "torch": 12}
"""Bytes per parameter of a checkpoint: 16-bit weights and fp32 master weights, momentum and variance (DeepSpeed),
or fp32 weights, momentum and variance (torch)."""
EXPORT_BYTES = 4
"""Bytes per parameter of an exported encoder and heads (fp32 safetensors)."""


@dataclass
class Work:
    """Compute of a stage: tokens, FLOPs, and the time they take on the plan's devices."""

    tokens: float | None
    flops: float | None
    gpu_hours: float | None
    wall_s: float | None
    note: str = ""


@dataclass
class Plan:
    """Everything ``muppet plan`` prints; ``render`` turns it into a table, Markdown or JSON."""

    pipeline: str
    backbone: str
    shape: Shape | None
    shape_source: str
    device: Device
    gpus: int
    datasets: list[TaskRows]
    prefinetune: dict
    finetune: dict
    store: dict
    held: dict
    assumptions: list[str] = field(default_factory=list)
    data: Work | None = None

    @property
    def wall_s(self) -> float | None:
        """The whole run's wall time: starting it, the data stage, pre-finetuning, the fine-tunes (None: a part unknown)."""
        parts = [self.device.fixed_s["run"], self.data.wall_s if self.data else 0.0,
                 self.prefinetune["work"].wall_s if self.prefinetune.get("work") else 0.0, self.finetune["work"].wall_s]
        return None if any(p is None for p in parts) else sum(parts)

    @property
    def known_gpu_hours(self) -> float:
        """GPU-hours of the parts whose figures are known: a lower bound where any is unknown."""
        parts = [self.prefinetune["work"].gpu_hours if self.prefinetune.get("work") else 0.0, self.finetune["work"].gpu_hours]
        return sum(p or 0.0 for p in parts)

    @property
    def gpu_hours(self) -> float | None:
        """Pre-finetuning's and the fine-tunes' GPU-hours together (None: either unknown)."""
        parts = [self.prefinetune["work"].gpu_hours if self.prefinetune.get("work") else 0.0, self.finetune["work"].gpu_hours]
        return None if any(p is None for p in parts) else sum(parts)


def _per_example(spec, rows: TaskRows | None, shape: Shape, params: int, max_length: int, target: int) -> tuple[float, float, float, bool]:
    """Tokens, training FLOPs and forward FLOPs of one example of ``spec``, and whether its length was measured."""
    family = get_family(spec.family)
    measured = rows is not None and rows.tokens is not None
    length = min(float(rows.tokens), max_length) if measured else float(max_length)
    k = family.sequences(spec)
    if family.decodes and shape.seq2seq:
        half, vocab_head = params / 2, shape.vocab * shape.hidden
        train = training_flops(half, shape.layers // 2, shape.hidden, length, length**2) + training_flops(
            half + vocab_head, shape.layers // 2, shape.hidden, target, target**2 + length * target)
        return length + target, train, train / 3, measured
    train = training_flops(params, shape.layers, shape.hidden, k * length, k * length**2)
    return k * length, train, forward_flops(params, shape.layers, shape.hidden, k * length, k * length**2), measured


def _weights(cfg: PipelineConfig, rows: list[TaskRows]) -> dict[str, float]:
    """Each task's share of the micro-batches, as the sampling draws them (unknown sizes count as the mean known size)."""
    pre = cfg.prefinetune
    cap = pre.max_train_examples or math.inf
    sizes = {r.task: min(r.rows.get("train", 0), cap) if r.rows else None for r in rows if r.task in pre.tasks}
    known = [s for s in sizes.values() if s]
    fill = sum(known) / len(known) if known else 1.0
    sizes = {t: float(s or fill) for t, s in sizes.items()}
    if pre.sampling == "uniform":
        sizes = dict.fromkeys(sizes, 1.0)
    elif pre.sampling == "temperature":
        sizes = {t: s ** (1 / pre.temperature) for t, s in sizes.items()}
    total = sum(sizes.values())
    return {t: s / total for t, s in sizes.items()}


def _time(flops: float | None, device: Device, devices: int) -> tuple[float | None, float | None]:
    if flops is None:
        return None, None
    seconds = flops / (device.flops_per_second * devices)
    return seconds * devices / 3600, seconds


def _heads(cfg: PipelineConfig, shape: Shape) -> int:
    """Parameters of the pre-finetuning heads: a dense layer and an output layer per head (shared heads counted once)."""
    names = {get_family(get_task(t).family).head_name(get_task(t)) for t in cfg.prefinetune.tasks if not get_family(get_task(t).family).decodes}
    return len(names) * (shape.hidden**2 + 2 * shape.hidden)


def _prefinetune(cfg: PipelineConfig, shape: Shape | None, device: Device, gpus: int, rows: list[TaskRows], held: Holdings) -> dict:
    pre = cfg.prefinetune
    if not pre.enabled:
        return {"enabled": False}
    examples = pre.steps * pre.tasks_per_step * pre.micro_batch_size
    out: dict = {"enabled": True, "tasks": len(pre.tasks), "updates": pre.steps, "examples": examples,
                 "taken_from_store": held.prefinetunes[:1]}
    if shape is None:
        out["work"] = Work(None, None, None, None, "unknown: the backbone's shape is unknown")
        return out
    weights, by_task = _weights(cfg, rows), {r.task: r for r in rows}
    params = shape.layer_params
    per = {t: _per_example(get_task(t), by_task.get(t), shape, params, pre.max_length, pre.max_target_length) for t in pre.tasks}
    mean_tokens = sum(weights[t] * per[t][0] for t in pre.tasks)
    mean_flops = sum(weights[t] * per[t][1] for t in pre.tasks)
    measured = sum(per[t][3] for t in pre.tasks)
    world = gpus if gpus > 1 else 1
    hours, seconds = _time(examples * mean_flops, device, world)
    start = device.fixed_s["prefinetune"]
    seconds, hours = seconds + start, hours + start * world / 3600
    if held.prefinetunes:
        seconds, hours = 0.0, 0.0
    note = (f"lengths: the data stage's median of {measured} of {len(pre.tasks)} datasets; the others counted at max_length "
            f"{pre.max_length} (an upper bound); {start:g} s to start")
    out["work"] = Work(examples * mean_tokens, examples * mean_flops, hours, seconds, note)
    out["mean_tokens_per_example"] = mean_tokens
    specs = [get_task(t) for t in pre.tasks]
    widest = max(get_family(s.family).sequences(s) for s in specs)
    target = pre.max_target_length if shape.seq2seq and any(get_family(s.family).decodes for s in specs) else 0
    training = Training(pre.engine, pre.precision, pre.zero_stage, world, pre.micro_batch_size * widest, pre.max_length, target)
    heads = _heads(cfg, shape)
    memory = memory_gib(shape, shape.params + heads, training, device.runtime_gib)
    fits = None if device.memory_gib is None else memory["total"] <= device.memory_gib
    out["memory"] = {"gib": memory, "limit_gib": device.memory_gib, "fits": fits, "widest_task_sequences": widest,
                     "params": shape.params + heads, "heads_params": heads,
                     "advice": [] if fits in (True, None) else advice(shape, shape.params + heads, training, device.runtime_gib, device.memory_gib, pre.micro_batch_size)}
    return out


def _variants(cfg: PipelineConfig) -> list[Variant]:
    pre = cfg.prefinetune
    variants = [Variant("base", "", "")]
    if pre.enabled:
        variants.append(Variant("prefinetuned", "", "", tuple(pre.tasks)))
        variants += [Variant(f"tasks_{k}", "", "", tuple(pre.tasks[:k]), experiment="task_count") for k in pre.task_counts]
    return variants


def _finetune(cfg: PipelineConfig, shape: Shape | None, device: Device, gpus: int, rows: list[TaskRows], held: Holdings) -> dict:
    ft = cfg.finetune
    runs = plan_runs(ft, _variants(cfg))
    by_task = {r.task: r for r in rows}
    cached = [r for r in runs if (r.benchmark, r.variant.name, r.seed) in held.finetunes]
    out: dict = {"count": len(runs), "by_variant": {}, "taken_from_store": len(cached), "benchmarks": {}}
    for r in runs:
        out["by_variant"][r.variant.name] = out["by_variant"].get(r.variant.name, 0) + 1
    if shape is None:
        out["work"] = Work(None, None, None, None, "unknown: the backbone's shape is unknown")
        return out
    total, unknown = 0.0, []
    for b in ft.benchmarks:
        spec, known = get_task(b), by_task.get(b)
        train_rows = (known.rows or {}).get("train") if known and known.rows else None
        eval_rows = (known.rows or {}).get("validation") if known and known.rows else None
        if train_rows is None:
            unknown.append(b)
            out["benchmarks"][b] = {"runs": sum(r.benchmark == b for r in runs), "train_rows": train_rows, "flops_per_run": None}
            continue
        n = min(train_rows, ft.max_train_examples or train_rows) * (1 - ft.selection_fraction if ft.selects else 1)
        n_eval = min(eval_rows or 0, ft.max_eval_examples or eval_rows or 0)
        _, train, forward, _ = _per_example(spec, known, shape, shape.layer_params, ft.max_length, 64)
        updates = math.ceil(n * ft.epochs / ft.batch_size)
        selection = (updates // ft.eval_every) * train_rows * ft.selection_fraction if ft.eval_every else 0
        flops = n * ft.epochs * train + (n_eval + selection) * forward
        count = sum(r.benchmark == b for r in runs)
        fraction = sum(r.fraction or 1.0 for r in runs if r.benchmark == b)  # sample-efficiency runs train on less
        total += flops * fraction
        out["benchmarks"][b] = {"runs": count, "train_rows": train_rows, "updates": updates, "flops_per_run": flops}
    to_run = len(runs) - len(cached)
    total *= to_run / len(runs) if runs else 0  # the store's fine-tunes are taken, not computed
    hours, _ = _time(total if not unknown else None, device, 1)
    if hours is not None:
        hours += to_run * device.fixed_s["finetune"] / 3600
    parallel = max(1, min(ft.concurrency, gpus))
    work = Work(None, total if not unknown else None, hours, hours * 3600 / parallel if hours is not None else None,
                f"{parallel} at once; {device.fixed_s['finetune']:g} s to start each" + (f"; unknown rows: {', '.join(unknown)}" if unknown else ""))
    out["work"] = work
    return out


def _data(rows: list[TaskRows], held: Holdings, device: Device) -> Work:
    """The data stage: the rows of every dataset the store does not hold, at the device kind's rows per second."""
    todo = [r for r in rows if r.task not in held.data]
    unknown = [r.task for r in todo if r.rows is None]
    count = sum(sum(r.rows.values()) for r in todo if r.rows)
    seconds = None if unknown else count / device.fixed_s["data_rows_per_s"]
    note = f"{len(rows) - len(todo)} of {len(rows)} datasets held by the store; {count:,} rows to normalize" + (
        f"; unknown rows: {len(unknown)} datasets" if unknown else "")
    return Work(None, None, None if seconds is None else 0.0, seconds, note)


def _store(cfg: PipelineConfig, shape: Shape | None, rows: list[TaskRows], pre: dict, finetunes: int) -> dict:
    data = sum(r.data_bytes or 0 for r in rows)
    unknown = [r.task for r in rows if r.data_bytes is None]
    out: dict = {"data": data, "data_unknown": unknown}
    if shape is None:
        return {**out, "checkpoint": None, "exports": None, "finetunes": finetunes * RECORD_BYTES, "total": None}
    params = pre.get("memory", {}).get("params", shape.params) if pre.get("enabled") else shape.params
    p = cfg.prefinetune
    checkpoint = params * CHECKPOINT_STATE_BYTES[p.engine] if pre.get("enabled") and p.checkpoint_every else 0
    exports = params * EXPORT_BYTES * (1 + len(p.task_counts)) if pre.get("enabled") else 0
    out.update(checkpoint=checkpoint, exports=exports, finetunes=finetunes * RECORD_BYTES)
    out["total"] = data + checkpoint + exports + finetunes * RECORD_BYTES
    return out


def plan_pipeline(name: str, cfg: PipelineConfig, store: ArtifactStore, device: Device, gpus: int) -> Plan:
    """The plan of a run of pipeline ``name`` on ``gpus`` devices like ``device``, reading (never writing) ``store``."""
    shape, shape_source = backbone_shape(cfg.backbone)
    tasks = cfg.data_tasks()
    held = store_holdings(store, list(cfg.prefinetune.tasks), cfg.prefinetune.steps)
    rows = task_rows([get_task(t) for t in tasks], cfg.data.mirror, held)
    data = _data(rows, held, device)
    pre = _prefinetune(cfg, shape, device, gpus, rows, held)
    ft = _finetune(cfg, shape, device, gpus, rows, held)
    store_bytes = _store(cfg, shape, rows, pre, ft["count"])
    held_summary = {"root": store.root, "datasets": sorted(set(held.data) & set(tasks)), "prefinetunes": held.prefinetunes,
                    "finetunes": ft["taken_from_store"], "bytes_by_stage": held.bytes_by_stage, "note": held.note}
    assumptions = [f"device rate: {device.rate_source}", f"runtime memory per process: {device.runtime_gib} GiB (assumed)",
                   f"fixed costs of {device.kind} (muppet_core/planning/hardware.yaml, assumed): {device.fixed_s}",
                   f"a fine-tune's stored output: {RECORD_BYTES // 1024} KiB (assumed)"]
    return Plan(name, cfg.backbone, shape, shape_source, device, gpus, rows, pre, ft, store_bytes, held_summary, assumptions, data)


def as_dict(plan: Plan) -> dict:
    """The plan as plain data (``--json``)."""
    out = dataclasses.asdict(plan)
    out["gpu_hours"] = plan.gpu_hours
    out["wall_s"] = plan.wall_s
    out["device"]["flops_per_second"] = plan.device.flops_per_second
    return out


__all__ = ["GIB", "Plan", "Work", "as_dict", "plan_pipeline"]
