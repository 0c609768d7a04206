# nvdimm-harness: the developer's entry points. `make run` and `make test` do all set-up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
NVH    := $(BIN)/nvdimm-harness
STAMP  := $(VENV)/.installed

.PHONY: setup run test test-unit test-e2e test-fast lint image kernel bench clean

setup: $(STAMP)

# The venv is rebuilt when pyproject.toml changes.
$(STAMP): pyproject.toml tools/install-host-deps.sh
	./tools/install-host-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

## The main job: the default suite on the stock Debian kernel.
run: setup
	$(NVH) run $(ARGS)

## Unit tests (seconds) and end-to-end tests (boot real guests).
test: setup
	$(BIN)/pytest -q tests/unit
	$(BIN)/pytest -v tests/e2e

test-unit: setup
	$(BIN)/pytest -q tests/unit

test-e2e: setup
	$(BIN)/pytest -v tests/e2e

## Everything but the kernel build (~10 min on 2 cores the first time, cached after).
test-fast: setup
	$(BIN)/pytest -q tests/unit
	$(BIN)/pytest -v -m "not slow" tests/e2e

lint: setup
	$(BIN)/ruff check harness tests conftest.py testcases

image: setup
	$(NVH) image build $(ARGS)

## make kernel TREE=~/linux PATCHES="series.mbox" CONFIG=debug
kernel: setup
	$(NVH) kernel build --tree $(TREE) $(foreach p,$(PATCHES),--patches $(p)) \
		$(foreach c,$(CONFIG),--config $(c)) $(ARGS)

## Figures for the README: image build, boot-to-SSH, suite time.
bench: setup
	$(BIN)/python -m harness.bench $(ARGS)

clean:
	rm -rf $(VENV) results
