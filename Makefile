# The two quick-start commands are `make demo` (install + the main job) and `make test`
# (install + the whole test suite). .ci/run calls `make test`.
PY ?= python3
PIP := $(PY) -m pip
# torch first, pinned: a bare `torch` requirement with no torch present pulls several GB of CUDA
# wheels; torch==2.13.0 takes the local CPU build on these machines.
TORCH ?= torch==2.13.0
APT := $(shell command -v apt-get 2>/dev/null)
ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)

.PHONY: install install-test system-data system-test demo test bench

# Debian's Fashion-MNIST (real data, MIT) for the default search
system-data:
ifeq ($(and $(APT),$(ROOT)),yes)
	@[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist || \
	   (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist))
else
	@[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || \
	  echo "note: install Fashion-MNIST with: sudo apt-get install dataset-fashion-mnist"
endif

# headless Chromium (page tests) and a PostgreSQL server (shared-storage tests)
system-test: system-data
ifeq ($(and $(APT),$(ROOT)),yes)
	@command -v chromium >/dev/null && [ -x /usr/lib/postgresql/*/bin/initdb ] || \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium postgresql || \
	   (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium postgresql))
endif

install: system-data
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e .

install-test: system-test
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[test]"

# the main job: a search on the embedded default space and real Fashion-MNIST
demo: install
	mvsearch run --space spaces/mobile.yaml --budget 1.5GFLOPs

test: install-test
	$(PY) -m pytest -q -ra

bench: install
	$(PY) bench/run_all.py
