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
# included) fits in under 10 minutes on 2 CPU cores. See docs/default_model.md.
SYNTH_IMAGES ?= 600
SYNTH_CLASSES ?= 3
IMGSZ ?= 128
EPOCHS ?= 30
BATCH ?= 8
LR0 ?= 0.004

MODEL ?= $(DEFAULT)/best.keras
OUT ?= $(BUILD)/convert
RECIPES ?=
DATA ?=
# The default model is calibrated on calibration_data/: the same synthetic generator as its training set, another
# seed. Any other model is calibrated on the train split of the dataset its metadata names, unless given here.
CALIBRATION ?= $(if $(filter $(DEFAULT)/best.keras,$(MODEL)),calibration_data)

DEFAULT_QAT := $(BUILD)/default_qat
QAT_EPOCHS ?= 3

.PHONY: install test test-large lint train qat convert bench bench-train bench-ptq bench-qat bench-auto bench-eval-memory bench-finetune \
	bench-import bench-coco bench-seg bench-targets bench-service bench-compress serve system-packages \
	bench-latency clean help

help:
	@echo "make convert     train the default model if needed, convert it with every recipe, report (main job)"
	@echo "make test        run the fast test suite (installs .venv on first use)"
	@echo "make test-large  run the slow real-data tests (needs ../shared/datasets)"
	@echo "make train       train the default model on the synthetic set into $(DEFAULT)/"
	@echo "make bench-train real-data training benchmark (PennFudan) -> benchmarks/results/"
	@echo "make bench-ptq   every PTQ recipe on the PennFudan model -> benchmarks/results/"
	@echo "make qat         quantization-aware fine-tune of the default model into $(DEFAULT_QAT)/"
	@echo "make bench-qat   PennFudan QAT vs PTQ, SiLU vs ReLU -> benchmarks/results/"
	@echo "make bench-auto  sensitivity + auto recipe (budgets 0.3, 1.0) on PennFudan -> benchmarks/results/"
	@echo "make bench-import    the same Ultralytics weights: its own TFLite exports vs tfyolo import + convert"
	@echo "make bench-targets   Ethos-U (Vela) estimates and TFLite Micro parity of every family's PennFudan int8 vs Ultralytics'"
	@echo "make bench-coco      80-class int8 of the COCO YOLOv8n / YOLO11n / YOLO26n: calibrated on coco128, scored on coco_val150"
	@echo "make bench-seg       segmentation int8 (box + mask mAP) of Ultralytics' PennFudan v8n/11n/26n-seg vs their own int8"
	@echo "make bench-finetune  PennFudan: short training from scratch vs from imported Ultralytics weights"
	@echo "make bench-compress  cluster_int8 / prune_int8 on PennFudan (from bench-import), mixed int8/int16 on the default model"
	@echo "make bench-service   20 tiny jobs at once to 2 workers on loopback: jobs/min, p95 API latency"
	@echo "make serve       the conversion service on localhost:8000 (SQLite, one worker; token: TFYOLO_API_TOKEN)"
	@echo "make bench-eval-memory  peak RSS of tfyolo-eval --reference at 640 px, 64 vs 128 coco128 images"
	@echo "make bench       latency suite + every benchmark not yet run -> benchmarks/RESULTS.md"
	@echo "make lint        ruff"

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,targets]'
	touch $@

install: $(STAMP)

# Two workers, one per core: most tests are single-threaded Python and TensorFlow graph building, so two files at
# a time nearly halve the wall time. A test file stays on one worker (--dist loadfile): its module fixtures are
# built once.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -m "not large" -q -n $(TEST_WORKERS) --dist loadfile --durations=10

# The slow suite also drives a local redis-server and headless chromium: installed here from the distribution's
# packages when missing (needs root and apt); without them those tests skip and say why.
SYSTEM_PACKAGES := redis-server chromium chromium-driver
system-packages:
	@if command -v redis-server >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get install -y -q $(SYSTEM_PACKAGES) >/dev/null || \
		(apt-get update -q >/dev/null && apt-get install -y -q $(SYSTEM_PACKAGES) >/dev/null) || \
		echo "note: could not install $(SYSTEM_PACKAGES); the Redis and browser tests will skip"; \
	else echo "note: $(SYSTEM_PACKAGES) missing and apt-get unavailable; the Redis and browser tests will skip"; fi

test-large: $(STAMP) system-packages
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
			--batch $(BATCH) --lr0 $(LR0) --warmup-epochs 1 --close-mosaic 3 --val-interval 5 --out $(DEFAULT); \
	fi
	touch $@

train: $(DEFAULT)/.done

# The main job. With no arguments: train the default model if needed, convert it with every recipe,
# evaluate each artifact against the float model and benchmark it -> $(OUT)/report.{md,json}.
convert: $(if $(filter $(DEFAULT)/best.keras,$(MODEL)),$(DEFAULT)/.done) | $(STAMP)
	$(BIN)/python converters/convert.py --model $(MODEL) --out $(OUT) \
		$(foreach recipe,$(RECIPES),--recipe $(recipe)) $(if $(DATA),--data $(DATA)) \
		$(if $(CALIBRATION),--calibration $(CALIBRATION)) \
		$(if $(filter $(DEFAULT)/best.keras,$(MODEL)),$(if $(wildcard $(DEFAULT_QAT)/best.h5),--qat-model $(DEFAULT_QAT)/best.h5))

# Quantization-aware fine-tune of the default model; `make convert` then adds qat_int8 rows to its report.
$(DEFAULT_QAT)/.done: $(DEFAULT)/.done | $(STAMP)
	if [ -f $(DEFAULT_QAT)/train_args.json ]; then \
		$(BIN)/tfyolo qat --resume --model $(DEFAULT)/best.keras --out $(DEFAULT_QAT); \
	else \
		$(BIN)/tfyolo qat --model $(DEFAULT)/best.keras --epochs $(QAT_EPOCHS) --batch $(BATCH) --out $(DEFAULT_QAT); \
	fi
	touch $@

qat: $(DEFAULT_QAT)/.done

bench-train: | $(STAMP)
	$(BIN)/python -m benchmarks.bench_train

bench-ptq: | $(STAMP)
	$(BIN)/python -m benchmarks.bench_ptq

bench-qat: | $(STAMP)
	$(BIN)/python -m benchmarks.bench_qat

bench-auto: | $(STAMP)
	$(BIN)/python -m benchmarks.bench_auto

bench-import: | $(STAMP)
	$(BIN)/python -m benchmarks.bench_import

bench-coco: | $(STAMP)
	$(BIN)/python -m benchmarks.bench_coco

bench-seg: | $(STAMP)
	$(BIN)/python -m benchmarks.bench_seg

bench-targets: | $(STAMP)
	$(BIN)/python -m benchmarks.bench_targets

bench-compress: $(DEFAULT)/.done | $(STAMP)
	$(BIN)/python -m benchmarks.bench_compress

bench-service: | $(STAMP)
	$(BIN)/python -m benchmarks.bench_service

bench-finetune: | $(STAMP)
	$(BIN)/python -m benchmarks.bench_finetune

bench-eval-memory: | $(STAMP)
	$(BIN)/python -m benchmarks.bench_eval_memory

bench-latency: | $(STAMP)
	$(BIN)/python -m benchmarks.bench_latency

# The whole suite: latency of every artifact (PennFudan recipes, the x86 study, make convert's artifacts),
# after the real-data benchmarks it needs, then benchmarks/RESULTS.md. Each step skips work already done.
bench: | $(STAMP)
	test -f benchmarks/work/pennfudan_n_320/best.keras || $(BIN)/python -m benchmarks.bench_train
	test -f benchmarks/results/ptq_pennfudan.json || $(BIN)/python -m benchmarks.bench_ptq
	test -f benchmarks/results/qat_pennfudan.json || $(BIN)/python -m benchmarks.bench_qat
	test -f benchmarks/results/auto_pennfudan.json || $(BIN)/python -m benchmarks.bench_auto
	test -f benchmarks/results/eval_memory_coco128.json || $(BIN)/python -m benchmarks.bench_eval_memory
	$(BIN)/python -m benchmarks.bench_latency
	$(BIN)/python -m benchmarks.summarize

clean:
	rm -rf $(BUILD)

# The conversion service on the embedded default: SQLite in build/service, one worker, localhost:8000, the
# synthetic set and calibration_data/ registered as datasets. The token is $TFYOLO_API_TOKEN, or one generated
# into build/service/token on first use.
SERVICE_DIR := $(BUILD)/service
serve: $(SYNTH)/data.yaml | $(STAMP)
	@mkdir -p $(SERVICE_DIR)
	@test -n "$$TFYOLO_API_TOKEN" || test -f $(SERVICE_DIR)/token || \
		( umask 077 && $(BIN)/python -c "import secrets; print(secrets.token_hex(16))" > $(SERVICE_DIR)/token && \
		echo "API token written to $(SERVICE_DIR)/token" )
	$(BIN)/tfyolo serve --data-dir $(SERVICE_DIR) --host 127.0.0.1 --port 8000 \
		$$(test -n "$$TFYOLO_API_TOKEN" || echo --token-file $(SERVICE_DIR)/token) \
		--dataset synthetic=$(SYNTH)/data.yaml --dataset calibration_data=calibration_data
