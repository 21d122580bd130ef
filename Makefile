# edgeops: `make run` sets everything up and runs the pipeline on the demo data; `make test` tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

# Embedded defaults: everything lives inside the project folder.
export PREFECT_HOME := $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PYTHONPATH := $(CURDIR)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Ports of the UIs on 127.0.0.1: `make ui MLFLOW_PORT=5001`, `make prefect-ui PREFECT_PORT=4201`.
MLFLOW_PORT ?= 5000
PREFECT_PORT ?= 4200

ZOO_DEMO_classification := data/demo
ZOO_DEMO_segmentation := data/demo-segmentation
ZOO_DEMO_detection := data/demo-detection
ZOO_DATA = $(or $(DATA),$(ZOO_DEMO_$(or $(TASK),classification)))

.PHONY: help setup run run-segmentation run-detection test test-unit lint format bench bench-zoo ui prefect-ui repro clean up down
.DEFAULT_GOAL := help

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

setup: $(VENV)/.installed $(PREFECT_HOME)/prefect.db ## create .venv, install the pinned stack (constraints.txt), create the local databases

$(VENV)/.installed: pyproject.toml constraints.txt
	@echo "setup: creating $(VENV) and installing the pinned stack (a few minutes the first time)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

# The embedded Prefect and MLflow sqlite databases, created once here instead of on the first pipeline run.
$(PREFECT_HOME)/prefect.db: $(VENV)/.installed
	$(BIN)/edgeops init

run: setup ## the whole pipeline on the built-in classification demo (digits), then the results
	$(BIN)/edgeops run --task classification --data data/demo

run-segmentation: setup ## the whole pipeline on the built-in segmentation demo (shapes on textures)
	$(BIN)/edgeops run --task segmentation --data data/demo-segmentation

run-detection: setup ## the whole pipeline on the built-in detection demo (shapes on textures, COCO boxes)
	$(BIN)/edgeops run --task detection --data data/demo-detection

test: setup ## run the test suite (unit + integration against real servers on loopback)
	$(PY) -m pytest -q

test-unit: setup ## only the fast unit tests
	$(PY) -m pytest -q tests/unit

lint: setup ## ruff (lint + format check) and mypy on src/
	$(BIN)/ruff check src tasks flows tests bench
	$(BIN)/ruff format --check src tasks flows tests bench
	$(BIN)/mypy src

format: setup ## apply ruff's formatting and fixes
	$(BIN)/ruff check --fix src tasks flows tests bench
	$(BIN)/ruff format src tasks flows tests bench

bench-zoo: setup ## every model of TASK's zoo (default classification) with its recipe on DATA (default: the task's demo) [at SIZE px]: train time, val, fp32/ptq/qat test scores -> bench/zoo_results.json
	@test -d "$(ZOO_DATA)" || $(BIN)/dvc repro demo
	$(PY) bench/zoo.py $(ZOO_DATA) --task $(or $(TASK),classification) $(if $(SIZE),--size $(SIZE))

bench: setup ## benchmark resnet18, mobilenet_v3_small, the segmentation U-Net, the detector, SSDLite (FP32 f32 + default, FP16, INT8) -> bench/results.json
	$(PY) bench/run.py --with-bare

ui: setup ## MLflow UI on http://127.0.0.1:5000 (MLFLOW_PORT=…): runs, metrics, registered models of mlflow.db
	@echo "MLflow UI: http://127.0.0.1:$(MLFLOW_PORT)  (store: sqlite:///$(CURDIR)/mlflow.db; Ctrl-C stops it)"
	@$(PY) -c 'from edgeops.cli import print_ui_url; print_ui_url($(MLFLOW_PORT))'
	MLFLOW_DISABLE_TELEMETRY=true $(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db \
	  --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1

# The server `edgeops run` starts for itself has no UI and stops with the run, but it writes to the same
# database ($(PREFECT_HOME)/prefect.db): this one shows every flow run recorded there. The UI asks the
# API at PREFECT_UI_API_URL, which Prefect would otherwise take from the environment's PREFECT_API_URL.
prefect-ui: setup ## Prefect UI on http://127.0.0.1:4200 (PREFECT_PORT=…): flow runs, stage tasks, logs of .prefect/
	@echo "Prefect UI: http://127.0.0.1:$(PREFECT_PORT)  (database: $(PREFECT_HOME)/prefect.db; Ctrl-C stops it)"
	@echo "  while it runs, \`export PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api\` makes edgeops run/serve use it"
	env -u PREFECT_API_URL PREFECT_SERVER_API_HOST=127.0.0.1 PREFECT_SERVER_API_PORT=$(PREFECT_PORT) \
	  PREFECT_UI_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api PREFECT_UI_URL=http://127.0.0.1:$(PREFECT_PORT) \
	  $(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT) --ui --analytics-off

# Team mode (scripts/team/up.sh): the servers the embedded defaults stand in for, on this machine, data in .team/.
up: setup ## team mode: PostgreSQL, S3 (radosgw; TEAM_S3=0: folders), MLflow + Prefect servers, WORKERS=1 workers; writes .team/env
	@MLFLOW_PORT=$(MLFLOW_PORT) PREFECT_PORT=$(PREFECT_PORT) scripts/team/up.sh

down: ## stop what `make up` started (by PID); the data stays in .team/ for the next `make up`
	@scripts/team/down.sh

repro: setup ## `dvc repro`: rebuild exactly what changed, without Prefect
	$(BIN)/dvc repro

clean: ## remove pipeline outputs (keeps .venv, the MLflow store and the DVC cache)
	rm -rf data/demo data/demo-segmentation data/demo-detection data/prepared checkpoints models metrics plots reports dvc.lock
