# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing, installs the project with a torch/torchvision
# pair that works on CPU-only Linux, and installs Graphviz's `dot` and PostgreSQL's
# server (for the sweep tests on a database server) when missing.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cortexgraph-installed
# torch 2.13.0's CPU wheel beside PyPI's torchvision fails to import; this pair works.
TORCH := torch==2.14.1 torchvision==0.29.1
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint setup dot postgres clean golden bench bench-full fuzz coverage mutate

setup: $(STAMP) dot postgres

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

dot:
	@command -v dot >/dev/null 2>&1 || { \
	  echo "installing Graphviz (dot) for drawings"; \
	  ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq graphviz >/dev/null) \
	  || echo "warning: could not install Graphviz; drawings other than --format dot will fail"; }

# tests/test_sweep_postgres.py starts a throwaway server of its own with initdb and pg_ctl, which Debian's
# package puts in /usr/lib/postgresql/VERSION/bin, off PATH (installing it also starts a `main` cluster on 5432).
postgres:
	@initdb=$$(command -v initdb || ls "$$(pg_config --bindir 2>/dev/null)/initdb" /usr/lib/postgresql/*/bin/initdb \
	  2>/dev/null | head -n 1); [ -n "$$initdb" ] || { \
	  echo "installing PostgreSQL (initdb) for the sweep tests on a database server"; \
	  ($(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql \
	  >/dev/null) || echo "warning: could not install PostgreSQL; tests/test_sweep_postgres.py will be skipped"; }

# The offline demo: a 3-area recurrent network, compiled, drawn and trained on
# scikit-learn's bundled handwritten digits (no download), then its test
# accuracy at every readout step.
DEMO_SPEC := demo/frnn3-digits
DEMO_OUT := runs/demo

demo: setup
	$(PY) -m cortexgraph compile $(DEMO_SPEC)
	@mkdir -p $(DEMO_OUT)
	$(PY) -m cortexgraph draw $(DEMO_SPEC) --view unrolled -o $(DEMO_OUT)/frnn3-digits-unrolled.svg
	$(PY) -m cortexgraph draw $(DEMO_SPEC) --view rolled -o $(DEMO_OUT)/frnn3-digits-rolled.svg
	$(PY) -m cortexgraph train $(DEMO_SPEC) --data digits --epochs 8 --batch-size 64 \
	  --optimizer adamw --lr 0.003 --out $(DEMO_OUT) --overwrite

test: setup
	$(PY) -m ruff check cortexgraph tests benchmarks examples
	$(VENV)/bin/lint-imports --no-cache  # the stages' layers (pyproject.toml, docs/architecture.md)
	$(PY) -m pytest

# Quick versions of every benchmark (a few minutes on 2 cores); tables on stdout, JSON in benchmarks/results.
BENCH := cd benchmarks && ../$(PY)
bench: setup
	$(BENCH) overhead.py --quick --json results/overhead.json
	$(BENCH) pruning.py --quick --json results/pruning.json
	$(BENCH) compile.py --quick --json results/compile.json
	$(BENCH) memory.py --quick --json results/memory.json
	$(BENCH) frontend.py --quick --json results/frontend.json
	$(BENCH) draw.py --json results/draw.json
	$(BENCH) data.py --quick --json results/data.json
	$(BENCH) kernels.py --json results/kernels.json
	$(BENCH) gpu.py --json results/gpu.json

# The full versions behind BENCHMARKS.md (about an hour on 2 cores).
bench-full: setup
	$(BENCH) overhead.py --json results/overhead.json
	$(BENCH) pruning.py --json results/pruning.json
	$(BENCH) compile.py --json results/compile.json
	$(BENCH) memory.py --json results/memory.json
	$(BENCH) frontend.py --grid --json results/frontend.json
	$(BENCH) draw.py --json results/draw.json
	$(BENCH) data.py --json results/data.json
	$(BENCH) kernels.py --json results/kernels.json
	$(BENCH) gpu.py --json results/gpu.json

# What benchmarks/gpu_session.sh installs on a lent GPU machine, whose Python (3.12, torch preinstalled)
# cannot reach PyPI: the project's other dependencies as wheels, carried there in .whl/.
gpu-wheels:
	python3 -m pip download -q -d .whl --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
	  --platform manylinux_2_17_x86_64 pydantic graphviz

# A longer fuzz of the spec reader (20,000 examples per test); prints hypothesis's statistics.
fuzz: setup
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest tests/test_fuzz_specs.py -p no:randomly --hypothesis-show-statistics

# Branch coverage of the library by the whole suite (slower than `make test`: every line is traced).
coverage: setup
	$(PY) -m pytest --cov --cov-report=term-missing

# Mutation testing of the core modules (mutmut; see [tool.mutmut] in pyproject.toml). Slow: hours on
# 2 cores for everything, so it runs in shards and keeps its results in mutants/, where a rerun tests
# only mutants of code that changed. MUTANTS picks a shard by name pattern, e.g.
# `make mutate MUTANTS='cortexgraph.plan.*'`; `mutants/` holds the results (`.venv/bin/mutmut results`).
# One torch thread per child: two children of two threads each oversubscribe two cores (load 4 seen).
MUTANTS ?=
mutate: setup
	OMP_NUM_THREADS=1 $(VENV)/bin/mutmut run $(foreach m,$(MUTANTS),'$(m)') --max-children 2
	$(VENV)/bin/mutmut results

golden: setup  # regenerate the golden drawings; review with `git diff tests/golden`
	$(PY) tests/update_golden.py

lint: setup
	$(PY) -m ruff check cortexgraph tests benchmarks examples
	$(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis mutants .coverage
