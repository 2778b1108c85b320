"""Every script under bench/ runs at a tiny size, as a user runs it, and prints the figures it promises.

Each runs in a subprocess (``python bench/SCRIPT.py ... --json``) on the tiny random BERT and the
real mirror; the last line of its stdout must be one JSON object with the promised figures, of
the right types and in sane ranges. A benchmark that breaks fails here the day it breaks.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

BENCH = REPO / "bench"
HELPERS = {"common.py", "flops.py"}  # modules the scripts import, not benchmarks themselves
ALL_FAMILIES = ["rotten_tomatoes", "stsb", "commonsenseqa", "squad", "cnn_dailymail"]  # one task per family
TINY = {
    "train_throughput.py": ["--tasks", ",".join(ALL_FAMILIES), "--steps", "3", "--warmup", "1", "--max-examples", "64",
                            "--micro-batch", "2", "--tasks-per-step", "8"],
    "data_prepare.py": ["--datasets", "trec,copa"],
    "vs_trainer.py": ["--train-examples", "32", "--eval-examples", "24", "--seeds", "2", "--parity-examples", "32", "--profile", "1", "--top", "5"],
    "fanout.py": ["--benchmarks", "rte", "--seeds", "2", "--concurrency", "2", "--max-train", "16", "--max-eval", "16"],  # with --work-pool: below
    "gpu_check.py": ["--device", "cpu", "--tiny"],
    "plan_check.py": ["--pipeline", "smoke"],
}


ELSEWHERE = {"fanout.py": "tests/integration/test_finetune_deployment.py", "vs_trainer.py": "test_vs_trainer_resumes_from_its_runs_file, below"}
"""Scripts whose tiny run (``TINY``, checked by ``CHECKS``) a test of the production stack makes, with
the options that need it (fanout.py's ``--work-pool``): the same run here would repeat it."""


def run_bench(script: str, backbone: str, mirror: str, *extra: str, env: dict | None = None) -> dict:
    """Run ``bench/<script>`` at its tiny size with ``--json`` (and ``extra`` options, in ``env``); its JSON line, parsed."""
    env = {**(env or os.environ), "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])), "MUPPET_DATA_MIRROR": mirror}
    cmd = [sys.executable, str(BENCH / script), *TINY[script], *extra, "--backbone", backbone, "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    lines = proc.stdout.strip().splitlines()
    assert lines, f"{script} printed nothing on stdout"
    try:
        figures = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        pytest.fail(f"{script}: the last stdout line is not JSON ({exc}): {lines[-1][:500]!r}")
    assert isinstance(figures, dict), f"{script}: the JSON line is not an object"
    assert len(lines) > 1, f"{script} printed no human-readable table before its JSON line"
    return figures


def positive(value, kind=float) -> bool:
    """A finite number above zero (``kind`` int: an integer, not a bool)."""
    number = (int,) if kind is int else (int, float)
    return isinstance(value, number) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def check_train_throughput(f: dict, backbone: str) -> None:
    assert set(f) == {
        "backbone", "engine", "tasks", "steps", "warmup", "max_length", "examples", "examples_per_task",
        "engine_examples_per_s", "bare_examples_per_s", "engine_over_bare", "padding_efficiency_grouped",
        "padding_efficiency_pad128", "bare_grouped_seconds", "bare_pad128_seconds", "speedup_grouped_over_pad128",
    }
    assert f["backbone"] == backbone and f["engine"] == "deepspeed" and f["tasks"] == ALL_FAMILIES
    assert (f["steps"], f["warmup"], f["max_length"]) == (3, 1, 128)
    assert positive(f["examples"], int) and f["examples"] <= 3 * 8 * 2
    # Every family's features went through the fixed-length padding, whatever else they carry.
    assert set(f["examples_per_task"]) == set(ALL_FAMILIES) and sum(f["examples_per_task"].values()) == f["examples"]
    for key in ("engine_examples_per_s", "bare_examples_per_s", "engine_over_bare", "bare_grouped_seconds", "bare_pad128_seconds",
                "speedup_grouped_over_pad128"):
        assert positive(f[key]), f"{key}: {f[key]!r}"
    assert f["engine_over_bare"] == pytest.approx(f["engine_examples_per_s"] / f["bare_examples_per_s"], rel=0.02)
    assert f["speedup_grouped_over_pad128"] == pytest.approx(f["bare_pad128_seconds"] / f["bare_grouped_seconds"], rel=0.05)
    assert 0 < f["padding_efficiency_pad128"] <= f["padding_efficiency_grouped"] <= 1  # the same batches, padded less


def check_data_prepare(f: dict, backbone: str) -> None:
    assert set(f) == {
        "datasets", "rows", "cold_seconds", "rows_per_s", "short_text_datasets", "short_text_rows_per_s",
        "cached_seconds", "cached_share_of_cold", "all_cache_hits", "per_dataset",
    }
    assert f["datasets"] == 2 and set(f["per_dataset"]) == {"trec", "copa"}
    for name, d in f["per_dataset"].items():
        assert set(d) == {"rows", "seconds", "rows_per_s", "p50_tokens"}, name
        assert positive(d["rows"], int) and positive(d["seconds"]) and positive(d["rows_per_s"], int) and positive(d["p50_tokens"], int), (name, d)
    assert f["rows"] == sum(d["rows"] for d in f["per_dataset"].values())
    assert positive(f["cold_seconds"]) and positive(f["rows_per_s"], int)
    assert "trec" in f["short_text_datasets"] and set(f["short_text_datasets"]) <= set(f["per_dataset"])
    assert positive(f["short_text_rows_per_s"], int)
    assert f["all_cache_hits"] is True
    assert isinstance(f["cached_seconds"], (int, float)) and f["cached_seconds"] >= 0
    assert 0 <= f["cached_share_of_cold"] < 1


def check_vs_trainer(f: dict, backbone: str) -> None:
    runs = ("muppet", "trainer_default", "trainer_grouped")
    assert set(f) == {"backbone", "benchmark", "train_examples", "eval_examples", *runs, "muppet_over_trainer_default",
                      "muppet_over_trainer_grouped", "profile", "families"}
    assert (f["backbone"], f["benchmark"], f["train_examples"], f["eval_examples"]) == (backbone, "sst2", 32, 24)
    for name in runs:
        r = f[name]
        assert set(r) == {"examples_per_s", "tokens_per_s", "accuracy", "padding_efficiency", "train_seconds"}, name
        assert positive(r["examples_per_s"]) and positive(r["train_seconds"]) and positive(r["tokens_per_s"]), (name, r)
        # train_seconds is printed to 0.01 s, which at this size is a few per cent of it
        assert 32 / (r["train_seconds"] + 0.005) <= r["examples_per_s"] * 1.001 and r["examples_per_s"] <= 32 / max(r["train_seconds"] - 0.005, 1e-9) * 1.001, name
        # Every run sees the same examples once: the same real tokens, so tokens/s scale as examples/s.
        assert r["tokens_per_s"] / r["examples_per_s"] == pytest.approx(f["muppet"]["tokens_per_s"] / f["muppet"]["examples_per_s"], rel=0.02)
        assert 0 < r["padding_efficiency"] <= 1 and 0 <= r["accuracy"] <= 100
        assert round(r["accuracy"] * 24 / 100) * 100 / 24 == pytest.approx(r["accuracy"], abs=0.01), f"{name}: not a share of 24 rows"
    for name in runs[1:]:
        assert f[f"muppet_over_{name}"] == pytest.approx(f["muppet"]["examples_per_s"] / f[name]["examples_per_s"], rel=0.02)
    # Two length-sorted micro-batches pad less than Trainer's random ones.
    assert f["muppet"]["padding_efficiency"] > f["trainer_default"]["padding_efficiency"]
    assert 1 <= len(f["profile"]) <= 5 and all(set(t) == {"op", "self_ms", "share", "calls"} for t in f["profile"])
    shares = [t["share"] for t in f["profile"]]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1 and any(t["op"].startswith("aten::") for t in f["profile"])
    check_vs_trainer_families(f)


def check_vs_trainer_families(f: dict) -> None:
    """Every family's comparison: both sides' seeds, spreads and speeds, and a verdict that follows from them."""
    expected = {  # family: (benchmark, main metric, the other metrics, epochs, the main metric's lowest value)
        "classification": ("sst2", "accuracy", [], 1, 0), "regression": ("stsb", "pearson", ["spearman"], 1, -100),
        "multiple_choice": ("copa", "accuracy", [], 3, 0), "span": ("squad", "squad_f1", ["exact_match"], 1, 0),
    }
    assert set(f["families"]) == set(expected)
    for name, (benchmark, metric, others, epochs, low) in expected.items():
        e = f["families"][name]
        assert set(e) == {"benchmark", "metric", "train_examples", "eval_examples", "epochs", "seeds", "muppet", "trainer", "verdict", "parity"}, name
        # With nothing random left to differ (no dropout, the same initial head, the same batches in the same order),
        # the project's fine-tune and Trainer compute the same: every update's loss and the score agree to float rounding.
        p = e["parity"]
        assert set(p) == {"updates", "max_loss_gap", "muppet", "trainer"} and p["updates"] >= 2, (name, p)
        assert p["max_loss_gap"] <= 1e-5 and p["muppet"] == pytest.approx(p["trainer"], abs=0.01), (name, p)
        assert (e["benchmark"], e["metric"], e["epochs"], e["seeds"]) == (benchmark, metric, epochs, [0, 1])
        assert (e["train_examples"], e["eval_examples"]) == (32, 24)
        for side in ("muppet", "trainer"):
            s = e[side]
            assert set(s) == {"pooling", "order", metric, *others, "examples_per_s"}, (name, side)
            for key in (metric, *others, "examples_per_s"):
                v = s[key]
                assert len(v["seeds"]) == 2 and v["min"] == min(v["seeds"]) and v["max"] == max(v["seeds"]), (name, side, key, v)
                assert v["mean"] == pytest.approx(sum(v["seeds"]) / 2, abs=0.011), (name, side, key, v)
                in_range = positive if key == "examples_per_s" else (lambda x: low <= x <= 100)
                assert all(in_range(x) for x in v["seeds"]), (name, side, key, v)
            if metric == "accuracy":
                assert all(round(x * 24 / 100) * 100 / 24 == pytest.approx(x, abs=0.01) for x in s[metric]["seeds"]), (name, side, "not 24 rows")
        assert e["muppet"]["pooling"] == "cls"  # the tiny BERT has no pooling of its own: the first token
        ours, peer = e["muppet"][metric]["mean"], e["trainer"][metric]
        assert e["verdict"] == ("above" if ours > peer["max"] else "below" if ours < peer["min"] else "within"), (name, e)
    span = f["families"]["span"]
    for side in ("muppet", "trainer"):  # an exact match is also a full F1 match
        assert all(em <= f1 + 1e-6 for em, f1 in zip(span[side]["exact_match"]["seeds"], span[side]["squad_f1"]["seeds"]))
    # The first seed's classification runs are the speed comparison's.
    c = f["families"]["classification"]
    assert (c["muppet"]["accuracy"]["seeds"][0], c["trainer"]["accuracy"]["seeds"][0]) == (f["muppet"]["accuracy"], f["trainer_default"]["accuracy"])
    assert c["muppet"]["examples_per_s"]["seeds"][0] == pytest.approx(f["muppet"]["examples_per_s"], abs=0.011)


def check_fanout(f: dict, backbone: str) -> None:
    """fanout.py's figures, from its tiny run with ``--work-pool`` (``ELSEWHERE``): the deployment's two as well."""
    assert set(f) == {
        "backbone", "runs", "concurrency", "cores", "threads_per_process", "load_average", "thread_seconds", "process_seconds",
        "reference_seconds", "speedup", "speedup_same_threads", "process_run_seconds", "reference_run_seconds", "identical", "differ",
        "identical_to_default", "failed", "warm", "process_overhead_s", "deployment_seconds", "deployment_overhead_s",
    }
    assert positive(f["deployment_seconds"]) and isinstance(f["deployment_overhead_s"], float)
    assert f["backbone"] == backbone and (f["runs"], f["concurrency"]) == (2, 2) and f["warm"] is True
    assert isinstance(f["process_overhead_s"], float)
    assert positive(f["cores"], int) and f["threads_per_process"] == max(1, f["cores"] // 2)
    for key in ("thread_seconds", "process_seconds", "reference_seconds", "speedup", "speedup_same_threads", "process_run_seconds", "reference_run_seconds"):
        assert positive(f[key]), f"{key}: {f[key]!r}"
    assert f["speedup"] == pytest.approx(f["thread_seconds"] / f["process_seconds"], rel=0.01)
    assert f["failed"] == [] and f["differ"] == [] and f["identical"] is True  # processes at concurrency 2 = one at a time, bit for bit
    assert isinstance(f["identical_to_default"], bool) and isinstance(f["load_average"], float)


def check_gpu_check(f: dict, backbone: str) -> None:
    assert set(f) == {
        "device", "device_name", "tiny", "examples_per_second", "tokens_per_second", "mfu", "headline", "gpu_cpu_max_rel_diff", "peak_flops",
        "peak_flops_source", "matmul_flops", "model", "tokenizer", "tasks", "prefinetune", "finetunes", "correctness", "versions",
        "seconds", "section_seconds",
    }
    assert (f["device"], f["tiny"], f["tokenizer"]) == ("cpu", True, backbone)
    assert f["tasks"] == ["rotten_tomatoes", "stsb", "commonsenseqa", "squad"]  # one dataset per family
    assert (f["model"]["num_hidden_layers"], f["model"]["hidden_size"]) == (2, 32) and positive(f["model"]["non_embedding_parameters"], int)
    # Without --peak-flops on a CPU, MFU is taken against this run's own matrix-product rate.
    assert positive(f["matmul_flops"]) and f["peak_flops"] == pytest.approx(f["matmul_flops"], rel=1e-6) and "measured" in f["peak_flops_source"]
    assert set(f["prefinetune"]) == {"deepspeed_zero1", "torch"}
    for name, e in f["prefinetune"].items():
        for key in ("examples_per_second", "tokens_per_second", "mfu", "mfu_computed", "achieved_flops", "seconds_per_update", "final_loss"):
            assert positive(e[key]), (name, key, e[key])
        assert e["updates"] == 4 and 0 < e["examples"] <= 4 * 4 * 4, (name, e)
        assert e["tokens_per_second"] > e["examples_per_second"] and 0 < e["padding_efficiency"] <= 1
        assert e["mfu"] < 1 and e["mfu"] <= e["mfu_computed"]  # padded positions are computed too
        assert e["mfu"] == pytest.approx(e["achieved_flops"] / f["peak_flops"], rel=1e-3) and e["peak_memory_gib"] is None
    assert f["headline"] == "deepspeed_zero1"  # the figures of the pre-finetuning stage's engine
    top = f["prefinetune"]["deepspeed_zero1"]
    assert (f["examples_per_second"], f["tokens_per_second"], f["mfu"]) == (top["examples_per_second"], top["tokens_per_second"], top["mfu"])
    ft = f["finetunes"]
    assert (ft["runs"], ft["concurrency"], ft["failed"], len(ft["pinned_to"])) == (2, 2, [], 2)
    assert positive(ft["seconds"]) and positive(ft["examples_per_second"]) and 0 < ft["mean_run_seconds"] <= ft["seconds"]
    c = f["correctness"]
    assert c["updates"] == 20 and len(c["device_losses"]) == len(c["cpu_losses"]) == 20 and all(positive(x) for x in c["cpu_losses"])
    # --device cpu: both runs on the CPU, in one process with the same threads: the same losses, bit for bit.
    assert f["gpu_cpu_max_rel_diff"] == c["max_rel_diff"] == 0 and c["device_losses"] == c["cpu_losses"] and c["within_1e-3"] is True
    assert set(f["section_seconds"]) == {"setup", "correctness", "deepspeed_zero1", "torch", "finetunes"}
    assert sum(f["section_seconds"].values()) <= f["seconds"] + 0.5


def check_plan_check(f: dict, backbone: str) -> None:
    assert set(f) == {"pipeline", "device_rate", "flops_per_second", "memory_parts_gib", "predicted", "measured", "ratio"}
    assert f["pipeline"] == "smoke" and positive(f["flops_per_second"])
    assert set(f["measured"]) == {"prefinetune_s", "prefinetune_rss_gib"}  # no --run: the pipeline is not run end to end
    for key, value in f["measured"].items():
        assert positive(value) and positive(f["predicted"][key]), key
        assert f["ratio"][key] == pytest.approx(f["predicted"][key] / value, rel=1e-2)
    assert 0.1 < f["measured"]["prefinetune_rss_gib"] < 8  # a tiny model's worker: the interpreter, torch and the data
    assert f["predicted"]["prefinetune_rss_gib"] == pytest.approx(f["memory_parts_gib"]["total"])


CHECKS = {
    "train_throughput.py": check_train_throughput, "data_prepare.py": check_data_prepare, "vs_trainer.py": check_vs_trainer,
    "fanout.py": check_fanout, "gpu_check.py": check_gpu_check, "plan_check.py": check_plan_check,
}


def test_every_benchmark_has_a_tiny_run():
    scripts = {p.name for p in BENCH.glob("*.py")} - HELPERS
    assert scripts == set(TINY) == set(CHECKS), "give every script under bench/ a tiny run (TINY) and its figures (CHECKS)"


@pytest.mark.parametrize("script", sorted(set(TINY) - set(ELSEWHERE)))
def test_benchmark_prints_its_figures(script, tiny_backbone, mirror):
    CHECKS[script](run_bench(script, tiny_backbone, mirror), tiny_backbone)


def test_vs_trainer_resumes_from_its_runs_file(tiny_backbone, mirror, tmp_path):
    """vs_trainer.py's tiny run, with ``--runs FILE``: its figures (``check_vs_trainer``); then a stopped
    long run loses no finished seed: the same command for COPA reads its seeds back from the file (and
    says so) instead of training them again, to the same figures, and a line cut short by the stop is
    run again."""
    runs = tmp_path / "runs.jsonl"
    first = run_bench("vs_trainer.py", tiny_backbone, mirror, "--runs", str(runs))
    check_vs_trainer(first, tiny_backbone)
    lines = runs.read_text().splitlines()
    assert [(json.loads(line)["benchmark"], json.loads(line)["seed"]) for line in lines] == [
        (b, s) for b in ("sst2", "stsb", "copa", "squad") for s in (0, 1)]
    copa = [line for line in lines if json.loads(line)["benchmark"] == "copa"]
    runs.write_text(copa[0] + "\n" + copa[1][: len(copa[1]) // 2])  # seed 1's line cut short, as by a SIGKILL mid-write
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])), "MUPPET_DATA_MIRROR": mirror}
    cmd = [sys.executable, str(BENCH / "vs_trainer.py"), *TINY["vs_trainer.py"], "--families", "copa", "--parity-examples", "0", "--profile", "0",
           "--runs", str(runs), "--backbone", tiny_backbone, "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    said = [line for line in proc.stderr.splitlines() if line.startswith("copa seed ")]
    assert len(said) == 2 and said[0].endswith(f"(read from {runs})") and "read from" not in said[1], said
    again = json.loads(proc.stdout.strip().splitlines()[-1])["families"]["multiple_choice"]
    for side in ("muppet", "trainer"):  # seed 0 read back, seed 1 trained again: the first run's scores
        assert again[side]["accuracy"]["seeds"] == first["families"]["multiple_choice"][side]["accuracy"]["seeds"], side
    assert [json.loads(line)["seed"] for line in runs.read_text().splitlines() if line.startswith("{") and line.endswith("}")] == [0, 1]
