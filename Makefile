# The two quick-start commands are `make demo` (install + the main job) and `make test`
# (install + the layer check + the whole test suite). .ci/run calls `make test`.
#
# Everything installs into a virtual environment, .venv/ (Debian's own python3 refuses
# `pip install` outside one: externally-managed-environment, PEP 668), and every target runs
# .venv/bin/python and .venv/bin/mvsearch. PY is the interpreter that makes the venv.
PY ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
VPIP := $(VPY) -m pip
# torch first, pinned: a bare `torch` requirement with no torch present pulls several GB of CUDA
# wheels; torch==2.13.0 takes the local CPU build on these machines.
TORCH ?= torch==2.13.0
# extra pytest arguments, e.g. make test PYTEST_ARGS="-m 'not slow' tests/test_space.py"
PYTEST_ARGS ?=
APT := $(shell command -v apt-get 2>/dev/null)
ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends

.PHONY: install install-test system-data system-test venv demo test bench

# Debian's Fashion-MNIST (real data, MIT) for the default search, and jemalloc, which training
# uses when present (less memory at the same speed: mvsearch/core/jemalloc.py)
JEMALLOC_OK = sh -c 'for f in /usr/lib/*/libjemalloc.so.2 /usr/lib64/libjemalloc.so.2 /usr/lib/libjemalloc.so.2; do [ -f "$$f" ] && exit 0; done; exit 1'
system-data:
ifeq ($(and $(APT),$(ROOT)),yes)
	@[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || \
	  ($(APT_INSTALL) dataset-fashion-mnist || (apt-get update -q && $(APT_INSTALL) dataset-fashion-mnist))
	@$(JEMALLOC_OK) || ($(APT_INSTALL) libjemalloc2 || (apt-get update -q && $(APT_INSTALL) libjemalloc2))
else
	@[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || \
	  echo "note: install Fashion-MNIST with: sudo apt-get install dataset-fashion-mnist"
	@$(JEMALLOC_OK) || echo "note: training takes less memory with jemalloc: sudo apt-get install libjemalloc2"
endif

# headless Chromium (page tests) and a PostgreSQL server (shared-storage tests)
system-test: system-data
ifeq ($(and $(APT),$(ROOT)),yes)
	@command -v chromium >/dev/null && [ -x /usr/lib/postgresql/*/bin/initdb ] || \
	  ($(APT_INSTALL) chromium postgresql || (apt-get update -q && $(APT_INSTALL) chromium postgresql))
endif

# The venv. Debian's python3 makes one only with its python3-venv package (venv + ensurepip):
# installed here when root with apt, else named in one line.
VENV_OK = $(PY) -c "import venv, ensurepip" >/dev/null 2>&1
VENV_PKG = $$($(PY) -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])' 2>/dev/null || echo python3-venv)
$(VENV)/.created:
	@$(VENV_OK) || { \
	  if [ -n "$(APT)" ] && [ "$(ROOT)" = yes ]; then \
	    $(APT_INSTALL) $(VENV_PKG) || (apt-get update -q && $(APT_INSTALL) $(VENV_PKG)); \
	  fi; }
	@$(VENV_OK) || { echo "error: $(PY) cannot make a virtual environment; install it with: sudo apt-get install $(VENV_PKG)" >&2; exit 1; }
	$(PY) -m venv $(VENV) || { rm -rf "$(VENV)"; exit 1; }
	@touch $@

$(VENV)/.torch: $(VENV)/.created
	$(VPIP) install -q "$(TORCH)"
	@touch $@

# each install runs again when pyproject.toml changes
$(VENV)/.install: pyproject.toml $(VENV)/.torch
	$(VPIP) install -q -e .
	@touch $@

$(VENV)/.install-test: pyproject.toml $(VENV)/.torch
	$(VPIP) install -q -e ".[test]"
	@touch $@

venv: $(VENV)/.created

install: system-data $(VENV)/.install

install-test: system-test $(VENV)/.install-test

# the main job: a search on the shipped default space and real Fashion-MNIST
demo: install
	$(VENV)/bin/mvsearch run --space mobile --budget 1.5GFLOPs
	@echo
	@echo "next (mvsearch is installed in $(VENV)/: run it as $(VENV)/bin/mvsearch, or first '. $(VENV)/bin/activate'):"
	@echo "  $(VENV)/bin/mvsearch trials --study mobile --sort accuracy"
	@echo "  $(VENV)/bin/mvsearch pareto --study mobile"
	@echo "  $(VENV)/bin/mvsearch report --study mobile"
	@echo "  $(VENV)/bin/mvsearch export --study mobile --best --format all -o models/"

# the layer contracts (pyproject.toml's [tool.importlinter]) first, then the tests
test: install-test
	$(VENV)/bin/lint-imports
	$(VPY) -m pytest -q -ra $(PYTEST_ARGS)

bench: install
	$(VPY) bench/run_all.py
