# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing, installs the project with a torch/torchvision
# pair that works on CPU-only Linux, and installs Graphviz's `dot` when missing.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cortexgraph-installed
# torch 2.13.0's CPU wheel beside PyPI's torchvision fails to import; this pair works.
TORCH := torch==2.14.1 torchvision==0.29.1
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint setup dot clean golden

setup: $(STAMP) dot

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

demo: setup
	$(PY) -m cortexgraph specs
	$(PY) -m cortexgraph validate $$($(PY) -c "from cortexgraph.bundled import bundled_specs; print(' '.join(bundled_specs()))")
	$(PY) -m cortexgraph compile liao2016/frnn4-imagenet
	$(PY) -m cortexgraph draw liao2016/frnn4-imagenet --view unrolled -o frnn4-imagenet-unrolled.svg

test: setup
	$(PY) -m ruff check cortexgraph tests
	$(PY) -m pytest

golden: setup  # regenerate the golden drawings; review with `git diff tests/golden`
	$(PY) tests/update_golden.py

lint: setup
	$(PY) -m ruff check cortexgraph tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
