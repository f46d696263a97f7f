# trio_mesos developer commands. Each target bootstraps .venv when needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: test demo conformance lint proto proto-check check-proto-compat clean

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
conformance: $(VENV)/.test-stamp
	bash ../shared/realmesos/setup.sh
	bash ../shared/realmesos/conformance.sh \
	    --executor "exec $(abspath $(PY)) -m trio_mesos.command_executor --echo-messages"

## make bench: throughput, start latency, memory, dispatch vs the h11 ceiling and pymesos
## (127.0.0.1 only; builds pymesos 0.3.15's venv under ~/.cache/trio_mesos-bench if needed)
bench: $(VENV)/.test-stamp
	$(PY) benchmarks/run_bench.py

## make lint: ruff and mypy --strict on the package
lint: $(VENV)/.dev-stamp
	$(PY) -m ruff check trio_mesos tests scripts
	$(PY) -m mypy trio_mesos

## make proto: regenerate trio_mesos/_proto from proto/
proto: $(VENV)/.dev-stamp
	$(PY) scripts/gen_proto.py

## make proto-check: fail if the committed generated code differs from a fresh generation
proto-check: $(VENV)/.dev-stamp
	rm -rf .proto-check && $(PY) scripts/gen_proto.py .proto-check
	diff -r trio_mesos/_proto .proto-check -x __pycache__ && rm -rf .proto-check

## make check-proto-compat: compare proto/ with the Mesos wire schema in ../shared
check-proto-compat: $(VENV)/.dev-stamp
	$(PY) ../shared/tools/check_proto_compat.py proto

clean:
	rm -rf $(VENV) .proto-check .pytest_cache .mypy_cache .ruff_cache .hypothesis
