"""A plan as Markdown (what ``muppet plan`` prints and every run publishes as its plan artifact) or JSON."""

from __future__ import annotations

import json

from muppet_core.planning.estimate import Plan, Work, as_dict


def artifact_key(pipeline: str) -> str:
    """The Prefect artifact key of a pipeline's plan (keys allow lowercase letters, digits and dashes)."""
    return f"plan-{pipeline.replace('_', '-')}"


def _n(x: float | None, unit: str = "") -> str:
    if x is None:
        return "unknown"
    for scale, suffix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}{unit}"
    return f"{x:.3g}{unit}"


def _bytes(x: float | None) -> str:
    if x is None:
        return "unknown"
    for scale, suffix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if x >= scale:
            return f"{x / scale:.3g} {suffix}"
    return f"{int(x)} B"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.2f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds / 60:.3g} min" if seconds >= 120 else f"{seconds:.3g} s"


def _work_row(stage: str, what: str, w: Work) -> str:
    return f"| {stage} | {what} | {_n(w.tokens)} | {_n(w.flops)} | {_n(w.gpu_hours)} | {_duration(w.wall_s)} | {w.note} |"


def markdown(plan: Plan) -> str:
    """The plan as Markdown tables: stages, memory per GPU, store bytes, datasets, what the store holds, assumptions."""
    d, pre, ft = plan.device, plan.prefinetune, plan.finetune
    shape = (f"{plan.shape.params / 1e6:.1f}M parameters ({plan.shape.layer_params / 1e6:.1f}M in {plan.shape.layers} layers, "
             f"hidden {plan.shape.hidden})" if plan.shape else "unknown")
    lines = [
        f"# Plan of `{plan.pipeline}`: {plan.gpus} x {d.kind} ({d.name})",
        "",
        f"Backbone `{plan.backbone}`: {shape}; from {plan.shape_source}.",
        f"Device rate: {_n(d.flops_per_second, 'FLOP/s')} per device = peak {_n(d.peak_flops, 'FLOP/s')} x MFU {d.mfu:.3g} ({d.rate_source}).",
        f"**Total: {_n(plan.gpu_hours)} GPU-hours.**" if plan.gpu_hours is not None else
        f"**Total: unknown GPU-hours; at least {_n(plan.known_gpu_hours)} (the parts whose datasets' rows are known).**",
        "",
        f"**Wall time: {_duration(plan.wall_s)}** (starting the run {_duration(d.fixed_s['run'])}, then the stages below, one after another).",
        "",
        "| stage | what | tokens | FLOPs | GPU-hours | wall time | notes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    if plan.data:
        lines.append(_work_row("data", f"{len(plan.datasets)} datasets", plan.data))
    if pre.get("enabled"):
        held = f"; the store holds it ({pre['taken_from_store'][0]})" if pre["taken_from_store"] else ""
        lines.append(_work_row("pre-finetune", f"{pre['tasks']} datasets, {pre['updates']} updates, {_n(pre['examples'])} examples{held}",
                               pre["work"]))
    else:
        lines.append("| pre-finetune | disabled | | | | | |")
    by_variant = ", ".join(f"{v} {n}" for v, n in ft["by_variant"].items())
    lines.append(_work_row("fine-tune", f"{ft['count']} fine-tunes ({by_variant}); {ft['taken_from_store']} held by the store", ft["work"]))
    if pre.get("memory"):
        m = pre["memory"]
        verdict = "no limit (CPU)" if m["fits"] is None else ("fits" if m["fits"] else "**does not fit**")
        g = m["gib"]
        lines += ["", f"## Memory per GPU (pre-finetuning): {g['total']:.1f} GiB of {m['limit_gib'] or '-'}: {verdict}", "",
                  "| weights | gradients | optimizer state | activations | runtime | total |", "| --- | --- | --- | --- | --- | --- |",
                  f"| {g['weights']:.2f} | {g['gradients']:.2f} | {g['optimizer']:.2f} | {g['activations']:.2f} | {g['runtime']:.2f} | {g['total']:.2f} |",
                  "", f"GiB; {_n(m['params'])} parameters ({_n(m['heads_params'])} in heads); a micro-batch of up to "
                  f"{m['widest_task_sequences']} sequence(s) per example at max_length."]
        lines += [f"- to fit: {a}" for a in m["advice"]]
    s = plan.store
    lines += ["", "## Store bytes", "", "| data | checkpoint (one kept at a time) | exports | fine-tune outputs | total |",
              "| --- | --- | --- | --- | --- |",
              f"| {_bytes(s['data'])}{' + unknown (' + str(len(s['data_unknown'])) + ' datasets)' if s['data_unknown'] else ''} | "
              f"{_bytes(s['checkpoint'])} | {_bytes(s['exports'])} | {_bytes(s['finetunes'])} | {_bytes(s['total'])} |"]
    h = plan.held
    lines += ["", f"## What the store holds ({h['root']})", "",
              f"- datasets normalized: {len(h['datasets'])} of {len(plan.datasets)}" + (f" ({', '.join(h['datasets'])})" if h["datasets"] else ""),
              f"- pre-finetunes on these tasks and steps: {len(h['prefinetunes'])}",
              f"- fine-tunes of this grid: {h['finetunes']} of {ft['count']}",
              "- matched by manifest (dataset, tasks and steps, benchmark, variant and seed), not by key: a changed setting recomputes"]
    if h["note"]:
        lines.append(f"- {h['note']}")
    lines += ["", "## Datasets", "", "| dataset | rows | median tokens | source |", "| --- | --- | --- | --- |"]
    for r in plan.datasets:
        rows = ", ".join(f"{k} {v:,}" for k, v in sorted(r.rows.items())) if r.rows else "unknown"
        lines.append(f"| {r.task} | {rows} | {r.tokens if r.tokens is not None else '-'} | {r.source} |")
    lines += ["", "## Assumptions", ""] + [f"- {a}" for a in plan.assumptions]
    return "\n".join(lines) + "\n"


def to_json(plan: Plan) -> str:
    """The plan as one JSON document."""
    return json.dumps(as_dict(plan), indent=1, default=str)
