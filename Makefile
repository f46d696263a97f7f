# trio_mesos developer commands. Each target bootstraps .venv when needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: test demo conformance lint proto proto-check check-proto-compat docs clean soak fuzz

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.test-stamp: pyproject.toml | $(PY)
	$(PIP) install -e '.[test]'
	touch $@

$(VENV)/.dev-stamp: pyproject.toml | $(PY)
	$(PIP) install -e '.[dev]'
	touch $@ $(VENV)/.test-stamp

## make test: run the whole test suite (what CI runs first)
test: $(VENV)/.test-stamp
	$(PY) -m pytest $(PYTEST_ARGS)

## make demo: the command executor runs sample tasks under the fake agent, live
demo: $(VENV)/.test-stamp
	$(PY) -m trio_mesos demo

## make conformance: the command executor through a real Mesos 1.11 agent (../shared/realmesos)
## (--keep-group-running: group_basic expects a group's other tasks to finish after one
## fails, where Mesos's default executor would kill them)
conformance: $(VENV)/.test-stamp
	bash ../shared/realmesos/setup.sh
	bash ../shared/realmesos/conformance.sh \
	    --executor "exec $(abspath $(PY)) -m trio_mesos.command_executor --echo-messages --keep-group-running"

## make bench: throughput, CPU per update, memory per pending update, import and start time,
## dispatch latency, against the h11 ceiling and floor, trio's own import and pymesos
## (127.0.0.1 only; builds pymesos 0.3.15's venv under ~/.cache/trio_mesos-bench if needed)
bench: $(VENV)/.test-stamp
	$(PY) benchmarks/run_bench.py

## make lint: ruff and mypy --strict on the package (and on the typing page's user code)
lint: $(VENV)/.dev-stamp
	$(PY) -m ruff check trio_mesos tests scripts
	$(PY) -m mypy trio_mesos
	$(PY) -m mypy docs/snippets/typed_user_code.py

$(VENV)/.docs-stamp: pyproject.toml | $(PY)
	$(PIP) install -e '.[docs]'
	touch $@

## make docs: the Sphinx site in docs/_build/html; warnings are errors; no network
## (-E: a fresh environment every time, so docstring edits always show; graphviz's
## `dot` draws the state diagrams and must be installed: it stops with how if not)
docs: $(VENV)/.docs-stamp
	@command -v dot >/dev/null || { \
	    echo "make docs: graphviz's 'dot' is not installed; it draws the state diagrams." >&2; \
	    echo "  Debian/Ubuntu: sudo apt-get install graphviz" >&2; \
	    echo "  Fedora/RHEL:   sudo dnf install graphviz" >&2; \
	    echo "  macOS:         brew install graphviz" >&2; \
	    exit 1; }
	$(PY) -m sphinx -E -W --keep-going -b html docs docs/_build/html

# protoc lives in a venv of its own: the generator pinned in scripts/proto-requirements.txt
# needs protobuf<6, the dev venv has the newest; mypy-protobuf's plugin runs from the dev venv.
# grpcio-tools 1.63.2 has wheels for CPython 3.8-3.12: elsewhere set PROTO_PYTHON=python3.12.
PROTO_PYTHON ?= $(PYTHON)
PROTO_VENV   := $(VENV)/proto-gen
GEN_PROTO     = $(PROTO_VENV)/bin/python scripts/gen_proto.py --mypy-plugin $(VENV)/bin/protoc-gen-mypy

$(PROTO_VENV)/.stamp: scripts/proto-requirements.txt | $(PY)
	rm -rf $(PROTO_VENV)
	$(PROTO_PYTHON) -m venv $(PROTO_VENV)
	$(PROTO_VENV)/bin/python -m pip --disable-pip-version-check -q install \
	    -r scripts/proto-requirements.txt
	touch $@

## make proto: regenerate trio_mesos/_proto from proto/
proto: $(VENV)/.dev-stamp $(PROTO_VENV)/.stamp
	$(GEN_PROTO)

## make proto-check: fail if the committed generated code differs from a fresh generation
proto-check: $(VENV)/.dev-stamp $(PROTO_VENV)/.stamp
	rm -rf .proto-check && $(GEN_PROTO) .proto-check
	diff -r trio_mesos/_proto .proto-check -x __pycache__ && rm -rf .proto-check

## make check-proto-compat: compare proto/ with the Mesos wire schema in ../shared
check-proto-compat: $(PROTO_VENV)/.stamp
	$(PROTO_VENV)/bin/python ../shared/tools/check_proto_compat.py proto

clean:
	rm -rf $(VENV) .proto-check .pytest_cache .mypy_cache .ruff_cache .hypothesis

## make soak: 100,000 status updates across 1,000 tasks while the fake agent drops streams,
## restarts, fails calls and plays with ACKs (virtual time; SEED=n reproduces a run)
soak: $(VENV)/.test-stamp
	$(PY) -m tests.soak --updates 100000 --tasks 1000 $(if $(SEED),--seed $(SEED))

FUZZ_SECONDS ?= 60
# Corpus and findings (crash-*) live in the (git-ignored) virtualenv directory.
FUZZ_DIR     ?= $(VENV)/fuzz

$(VENV)/.fuzz-stamp: pyproject.toml | $(PY)
	$(PIP) install -e '.[test,fuzz]'
	touch $@

## make fuzz: coverage-guided fuzzing with atheris, FUZZ_SECONDS per target (RecordIO and
## events; the driver reading SUBSCRIBE answers); findings go to $(FUZZ_DIR)
fuzz: $(VENV)/.fuzz-stamp
	mkdir -p $(FUZZ_DIR)/events $(FUZZ_DIR)/driver
	$(PY) -m tests.fuzz_atheris -max_total_time=$(FUZZ_SECONDS) \
	    -artifact_prefix=$(FUZZ_DIR)/ $(FUZZ_DIR)/events
	$(PY) -m tests.fuzz_atheris --target driver -max_total_time=$(FUZZ_SECONDS) \
	    -artifact_prefix=$(FUZZ_DIR)/ $(FUZZ_DIR)/driver
