# Quickstart: `make demo` runs the demo pipeline end to end; `make test` runs the tests.
# Both bootstrap .venv once; a second call installs nothing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.bootstrapped
TORCH_CPU := torch==2.13.0
LOCK := requirements/constraints.txt

export MUPPET_DATA_MIRROR ?= $(abspath ../shared/data)
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export HF_HUB_DISABLE_TELEMETRY ?= 1

.PHONY: bootstrap lock demo study smoke-backbone test test-fast serve clean-store browser docs

bootstrap: $(STAMP)

# Without CUDA the CPU build of torch is pinned first, so nothing multi-GB is downloaded. Every
# other package is installed at the version the lock pins.
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if command -v nvidia-smi >/dev/null 2>&1; then echo "CUDA found: torch resolved by pip"; \
	  else $(BIN)/pip install -q --disable-pip-version-check $(TORCH_CPU); fi
	$(BIN)/pip install -q --disable-pip-version-check -c $(LOCK) -e '.[test]'
	@touch $(STAMP)

# The lock, compiled again from pyproject.toml (after a dependency changed): existing pins are kept
# wherever they still fit. Needs only uv, at the lock's version, not a bootstrapped .venv.
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c $(LOCK) uv packaging
	$(BIN)/python requirements/lock.py compile --torch $(TORCH_CPU) --uv $(BIN)/uv

demo: $(STAMP)
	$(BIN)/muppet run demo
	$(BIN)/muppet results demo --format md

# The study (docs/results/study.md, 52 minutes on 2 quiet cores): the ablation pipelines are run apart. The run's
# log (every stage's start and end) goes to muppet-store/study-run.log; the table, its CSV and chart to docs/results/.
study: $(STAMP)
	@mkdir -p muppet-store
	bash -o pipefail -c '$(BIN)/muppet run study 2>&1 | tee muppet-store/study-run.log'
	$(BIN)/muppet results study --format csv --output docs/results/study.csv
	$(BIN)/muppet results study --format md --output docs/results/study-leaderboard.md
	cp muppet-store/pipelines/study/leaderboard.png docs/results/study.png

# The smoke pipeline's backbone: a 2-layer random BERT with MiniLM's tokenizer (5 MB), so that `muppet run smoke`
# checks a stack end to end in about a minute (docs/operations.md).
smoke-backbone: $(STAMP)
	$(BIN)/python -c 'from muppet_core.models.tiny import save_tiny_bert; print("wrote", save_tiny_bert("build/smoke-backbone"))'

# A local Prefect server (UI on http://127.0.0.1:4200) serving one deployment per pipeline; its
# auth string comes from PREFECT_API_AUTH_STRING or ~/.prefect/muppet-server-auth, generated once (docs/security.md).
# Its database: SQLite under PREFECT_HOME, or DB=postgresql+asyncpg://postgres@127.0.0.1:5432/prefect.
DB ?=
serve: $(STAMP)
	$(BIN)/muppet serve --with-server --server-log muppet-server.log $(if $(DB),--database-url '$(DB)')

# The browser tests drive Debian's chromium through Playwright: installed here when missing (apt-get, as root or through sudo).
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# Three pytest workers on two cores (a test file stays on one worker, and so do the files that read the
# tiny pipeline run `first_run`: tests/conftest.py; each test process uses one core):
# the suite's tests wait on servers and processes for a part of their time, which a third worker fills.
TEST_WORKERS ?= 3

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

# The inner loop: every test not marked slow (integration, faults, bench and the torchrun worker tests are: pipelines, servers, benchmarks), one worker per core.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n auto -m "not slow" tests

# docs/configuration.md's settings reference, generated from the config models' docstrings.
docs: $(STAMP)
	$(BIN)/python -c 'from muppet_core.config import write_reference; write_reference("docs/configuration.md")'

clean-store:
	rm -rf muppet-store
