# Every target installs what it needs into .venv on first use (the stamp below), so a fresh clone needs no
# separate set-up step: `make convert` runs the main job, `make test` passes the tests.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUILD := build
SYNTH := $(BUILD)/synthetic
DEFAULT := $(BUILD)/default

# The embedded default: a synthetic set and a small model sized so that a first `make convert` (training
# included) fits in about 15 minutes on 2 CPU cores. See README "The default model".
SYNTH_IMAGES ?= 600
SYNTH_CLASSES ?= 3
IMGSZ ?= 128
EPOCHS ?= 35
BATCH ?= 8
LR0 ?= 0.004

MODEL ?= $(DEFAULT)/best.keras
OUT ?= $(BUILD)/convert
RECIPES ?=
DATA ?=
CALIBRATION ?=

.PHONY: install test test-large lint train convert bench bench-train bench-ptq clean help

help:
	@echo "make convert     train the default model if needed, convert it with every recipe, report (main job)"
	@echo "make test        run the fast test suite (installs .venv on first use)"
	@echo "make test-large  run the slow real-data tests (needs ../shared/datasets)"
	@echo "make train       train the default model on the synthetic set into $(DEFAULT)/"
	@echo "make bench-train real-data training benchmark (PennFudan) -> benchmarks/results/"
	@echo "make bench-ptq   every PTQ recipe on the PennFudan model -> benchmarks/results/"
	@echo "make lint        ruff"

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not large" -q

test-large: $(STAMP)
	$(BIN)/python -m pytest -m large -q

lint: $(STAMP)
	$(BIN)/ruff check tfyolo tests converters benchmarks

$(SYNTH)/data.yaml: | $(STAMP)
	$(BIN)/tfyolo data synth $(SYNTH) --images $(SYNTH_IMAGES) --classes $(SYNTH_CLASSES) --imgsz $(IMGSZ) --seed 0

# A run that was interrupted resumes from its last checkpoint instead of starting over.
$(DEFAULT)/.done: $(SYNTH)/data.yaml | $(STAMP)
	if [ -f $(DEFAULT)/train_args.json ]; then \
		$(BIN)/tfyolo train --resume --out $(DEFAULT); \
	else \
		$(BIN)/tfyolo train --data $(SYNTH)/data.yaml --model n --imgsz $(IMGSZ) --epochs $(EPOCHS) \
			--batch $(BATCH) --lr0 $(LR0) --warmup-epochs 1 --close-mosaic 3 --out $(DEFAULT); \
	fi
	touch $@

train: $(DEFAULT)/.done

# The main job. With no arguments: train the default model if needed, convert it with every recipe,
# evaluate each artifact against the float model and benchmark it -> $(OUT)/report.{md,json}.
convert: $(if $(filter $(DEFAULT)/best.keras,$(MODEL)),$(DEFAULT)/.done) | $(STAMP)
	$(BIN)/python converters/convert.py --model $(MODEL) --out $(OUT) \
		$(foreach recipe,$(RECIPES),--recipe $(recipe)) $(if $(DATA),--data $(DATA)) \
		$(if $(CALIBRATION),--calibration $(CALIBRATION))

bench-train: | $(STAMP)
	$(BIN)/python -m benchmarks.bench_train

bench-ptq: | $(STAMP)
	$(BIN)/python -m benchmarks.bench_ptq

clean:
	rm -rf $(BUILD)
