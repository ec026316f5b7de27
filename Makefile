# The exact commands. `make demo` installs and runs the main job; `make test` installs and runs the tests.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
SHARED  ?= ../shared
MODELS  ?= $(HOME)/.cache/rag-test-models
DOCS    ?= examples/docs
Q       ?= Where is the spare key hidden?
INDEX   ?= $(CURDIR)/.demo-index

# OFFLINE=1: use the real small models built from package registries by $(SHARED)/models/build.sh
# (MiniLM embedder + SmolLM2 chat model) instead of the Qwen3 defaults from the model hub.
ifeq ($(OFFLINE),1)
export RAG_EMBED_MODEL ?= $(MODELS)/all-MiniLM-L6-v2
export RAG_LLM ?= $(MODELS)/SmolLM2-135M-Instruct
endif

.PHONY: install demo ui test test-all lint models

$(BIN)/rag: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

install: $(BIN)/rag

models:
	@if [ -x $(SHARED)/models/build.sh ]; then RAG_TEST_MODELS=$(MODELS) $(SHARED)/models/build.sh minilm qwen3-tiny smollm2; \
	else echo "no $(SHARED)/models/build.sh: model tests will be skipped"; fi

demo: install
	@if [ "$(OFFLINE)" = 1 ]; then $(MAKE) --no-print-directory models; fi
	$(BIN)/rag index --index $(INDEX) $(DOCS)
	$(BIN)/rag ask --index $(INDEX) "$(Q)"

ui: install
	@if [ "$(OFFLINE)" = 1 ]; then $(MAKE) --no-print-directory models; fi
	$(BIN)/rag ui --index $(INDEX)

test: install models lint
	RAG_TEST_MODELS=$(MODELS) $(BIN)/python -m pytest
	RAG_TEST_MODELS=$(MODELS) $(BIN)/python -m pytest -m browser

test-all: install models
	RAG_TEST_MODELS=$(MODELS) $(BIN)/python -m pytest -m ""

lint: install
	$(BIN)/ruff check ingest rag tests examples bench
	$(BIN)/ruff format --check ingest rag tests examples bench
	$(BIN)/mypy
