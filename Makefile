# nvdimm-harness: the developer's entry points. `make run` and `make test` do all set-up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
NVH    := $(BIN)/nvdimm-harness
STAMP  := $(VENV)/.installed

.PHONY: setup browser run matrix ndctl-test test test-unit test-e2e test-fast lint image kernel ab bench avocado clean

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

## The suite on several kernels, one side-by-side report: make matrix [KERNELS=default,trixie]
## [K=expr] [ARGS=...] (KERNELS as for `nvdimm-harness matrix --kernels`).
matrix: setup
	$(NVH) matrix --kernels $(or $(KERNELS),default,trixie) $(if $(K),-k "$(K)") $(ARGS)

## ndctl's own test suites in a guest: make ndctl-test [SUITE=dax|ndctl|cxl|all] [TREE=~/linux]
## [K=expr] [ARGS=...]. The ndctl and cxl suites need TREE (nfit_test is built from it).
ndctl-test: setup
	$(NVH) ndctl-test --suite $(or $(SUITE),dax) $(if $(TREE),--kernel-tree $(TREE)) \
		$(if $(K),-k "$(K)") $(ARGS)

## Unit tests (seconds) and end-to-end tests (boot real guests).
test: setup browser
	$(BIN)/pytest -q tests/unit
	$(BIN)/pytest -v --durations=20 tests/e2e

# tests/e2e/test_report_browser.py renders report.html in a real headless browser; only the
# tests need one (Ubuntu CI images ship chromium or google-chrome, Debian gets its package).
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		command -v google-chrome >/dev/null || ./tools/install-host-deps.sh chromium

test-unit: setup
	$(BIN)/pytest -q tests/unit

test-e2e: setup browser
	$(BIN)/pytest -v --durations=20 tests/e2e

## Everything but the kernel build (~10 min on 2 cores the first time, cached after).
test-fast: setup browser
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

## Before sending a series: the suite on TREE without and with PATCHES, then what changed.
## make ab TREE=~/linux PATCHES="0001-a.patch 0002-b.patch" [BASE=results/ab-base] [K=pin]
## BASE reuses an earlier baseline run instead of running one. Exit 1 when anything regressed.
AB_BASE := $(or $(BASE),results/ab-base)
ifneq ($(filter ab,$(MAKECMDGOALS)),)
ifeq ($(strip $(TREE)),)
$(error make ab: TREE=<kernel tree> is required, e.g. make ab TREE=~/linux PATCHES="x.patch")
endif
endif

ab: setup
	@if [ -n "$(BASE)" ] && [ ! -f "$(BASE)/summary.json" ]; then \
		echo "make ab: BASE=$(BASE): no summary.json (not a results directory)" >&2; exit 2; fi
	@if [ "$(AB_BASE)" -ef results/ab-patched ]; then \
		echo "make ab: BASE must not be results/ab-patched (it is rewritten)" >&2; exit 2; fi
	$(if $(BASE),,rm -rf results/ab-base)
	$(if $(BASE),,$(NVH) run --kernel-tree $(TREE) $(AB_RUN_ARGS) --results results/ab-base \
		|| [ $$? -eq 1 ])
	rm -rf results/ab-patched
	$(NVH) run --kernel-tree $(TREE) $(foreach p,$(PATCHES),--patches $(p)) $(AB_RUN_ARGS) \
		--results results/ab-patched || [ $$? -eq 1 ]
	$(NVH) compare $(AB_BASE) results/ab-patched --html results/ab.html

# Both runs get the same options; a run whose tests fail (exit 1) still gets compared.
AB_RUN_ARGS = $(foreach c,$(CONFIG),--config $(c)) $(if $(K),-k '$(K)') $(ARGS)

## Figures for the README: image build, boot-to-SSH, suite time.
bench: setup
	$(BIN)/python -m harness.bench $(ARGS)

## The suite under avocado: one avocado test, and one guest boot, per pytest test.
## make avocado [K=expr] [JOBS=1] [ARGS="--kernel ... --accel tcg"]   (see README)
## Results: results/avocado/latest/ (results.xml, results.json, results.html, test-results/).
avocado: setup
	$(BIN)/python testcases/avocado/runnables.py $(if $(K),-k '$(K)') $(ARGS) \
		--out results/avocado/suite.json
	$(BIN)/avocado run --max-parallel-tasks $(or $(JOBS),1) \
		--job-results-dir results/avocado results/avocado/suite.json

## Stability: the suite SOAK_N times in a row (default 5); is every verdict the same, and
## is anything left (QEMU processes, files under /tmp)? make soak [SOAK_N=5] [ARGS='-k pin']
SOAK_N ?= 5
.PHONY: soak
soak: setup
	$(BIN)/python tools/soak.py -n $(SOAK_N) -- $(ARGS)

clean:
	rm -rf $(VENV) results
