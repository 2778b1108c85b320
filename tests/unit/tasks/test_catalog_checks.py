"""The catalog is checked when it loads: strict YAML, metric, reader and normalizer names resolved
with a did-you-mean, and a user's own catalog folder adds datasets without touching the package."""

from __future__ import annotations

import os

import pytest

from muppet_core.errors import ConfigError
from muppet_core.tasks.catalog import CATALOG_ENV, get_task, load_catalog, use_catalog_dirs

ENTRY = """tasks:
  {name}:
    family: classification
    hub: {{path: nyu-mll/glue, name: sst2}}
    mirror: {{train: sst2/stsa.binary.train, validation: sst2/stsa.binary.dev}}
    reader: {reader}
    normalizer: {normalizer}
    labels: [negative, positive]
    metric: {metric}
"""
GOOD = {"reader": "lines", "normalizer": "muppet_core.tasks.normalizers.classification:label_prefixed_line", "metric": "accuracy"}


@pytest.fixture(autouse=True)
def _own_catalog_env(monkeypatch):
    monkeypatch.delenv(CATALOG_ENV, raising=False)


def _catalog(tmp_path, name="my_sst2", **fields) -> str:
    folder = tmp_path / "catalog"
    folder.mkdir(exist_ok=True)
    (folder / "mine.yaml").write_text(ENTRY.format(name=name, **{**GOOD, **fields}))
    return str(folder)


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("metric", "acuracy", "tasks.my_sst2.metric: unknown metric 'acuracy' (did you mean 'accuracy'?)"),
        ("reader", "line", "tasks.my_sst2.reader: unknown reader 'line' (did you mean 'lines'?)"),
        ("normalizer", "muppet_core.tasks.normalizers.classification:label_prefixed_lines",
         "tasks.my_sst2.normalizer: module 'muppet_core.tasks.normalizers.classification' has no function "
         "'label_prefixed_lines' (did you mean 'label_prefixed_line'?)"),
        ("normalizer", "muppet_core.tasks.normalizers.nowhere:f", "tasks.my_sst2.normalizer: module 'muppet_core.tasks.normalizers.nowhere' cannot be imported"),
    ],
)
def test_a_misspelled_name_is_refused_when_the_catalog_loads(tmp_path, field, value, expected):
    with pytest.raises(ConfigError) as err:
        load_catalog(_catalog(tmp_path, **{field: value}))
    assert any(expected in problem for problem in err.value.problems), err.value.problems


def test_a_duplicate_key_in_a_catalog_file_is_refused(tmp_path):
    folder = tmp_path / "dup"
    folder.mkdir()
    (folder / "twice.yaml").write_text(ENTRY.format(name="my_sst2", **GOOD) + "    metric: f1\n")
    with pytest.raises(ConfigError, match="duplicate key 'metric'"):
        load_catalog(str(folder))


def test_a_user_catalog_folder_adds_datasets_beside_the_package(tmp_path):
    folder = _catalog(tmp_path)
    with pytest.raises(KeyError, match="unknown task 'my_sst2'"):
        get_task("my_sst2")
    use_catalog_dirs([folder])
    assert os.environ[CATALOG_ENV] == folder
    assert get_task("my_sst2").metric == "accuracy" and get_task("sst2").name == "sst2"


def test_a_user_entry_may_not_redefine_a_package_task(tmp_path):
    with pytest.raises(ConfigError, match="tasks.sst2: defined in more than one catalog file"):
        use_catalog_dirs([_catalog(tmp_path, name="sst2")])


def test_a_missing_catalog_folder_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="catalog: no such folder"):
        use_catalog_dirs([str(tmp_path / "absent")])


def test_every_package_entry_resolves():
    catalog = load_catalog()
    assert len(catalog) >= 56


@pytest.mark.parametrize(
    ("argv", "exit_code"),
    [(["validate"], 0), (["tasks", "ls"], 0), (["tasks", "show", "squad"], 0), (["results", "demo", "--store", "{empty}"], 2)],
)
def test_commands_that_only_read_load_no_training_stack(argv, exit_code, tmp_path):
    """Checking every entry (families, metrics, readers, normalizers) names what it needs without
    loading it, and `results` reads a published table (here: finds none) without the training
    stack: each such command is a process of its own, and torch, transformers and sklearn cost
    seconds there."""
    import subprocess
    import sys

    from tests.conftest import REPO

    argv = [a.format(empty=tmp_path / "empty-store") for a in argv]
    probe = (
        "import sys\n"
        "from muppet_core.cli import build_parser, run_command\n"
        f"code = run_command(build_parser()[0], {argv!r})\n"
        "print(sorted(m for m in ('torch', 'transformers', 'sklearn', 'scipy', 'matplotlib') if m in sys.modules))\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == exit_code, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
