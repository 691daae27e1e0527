# ecg-mi — two set-up commands: `make train` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
MLFLOW_URI ?= $(if $(MLFLOW_TRACKING_URI),$(MLFLOW_TRACKING_URI),sqlite:///$(CURDIR)/mlflow.db)
UI_PORT ?= 5000
# Shared tracking server (make mlflow-server): SQL backend + served artifact root, loopback only.
SERVER_PORT      ?= 5001
SERVER_BACKEND   ?= sqlite:///$(CURDIR)/mlflow-server.db
SERVER_ARTIFACTS ?= $(CURDIR)/mlartifacts
SERVER_HOST      ?= 127.0.0.1

.PHONY: install lock lock-check docs docs-build train test test-slow test-all bench scale benchmark best ui serve serve-needs-model mlflow-server lint clean clean-store

## Locked install: exactly the versions (and hashes) of requirements.lock, then the project with
## --no-deps, by uv (pinned, bootstrapped into the venv by pip; ~10x faster than pip here); refused
## while the lock is out of sync with pyproject.toml. make lock re-resolves it (LOCK_ARGS=--upgrade
## lifts every pin); make lock-check is CI's check (tools/lock.py). torch is the CPU build on disk,
## in pip's find-links, passed on to uv (which does not read pip's config).
LOCK        = requirements.lock
LOCK_EXTRAS = dev docs
LOCK_TOOL   = $(PYTHON) tools/lock.py --extras "$(LOCK_EXTRAS)"
UV          = uv==0.13.9
FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))
UV_FLAGS    = --quiet --python $(BIN)/python $(FIND_LINKS:%=--find-links %)
define venv_with_uv
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet $(UV)
endef

$(STAMP): pyproject.toml $(LOCK)
	@$(LOCK_TOOL) check $(LOCK)
	$(venv_with_uv)
	$(BIN)/uv pip install $(UV_FLAGS) --require-hashes -r $(LOCK)
	$(BIN)/uv pip install $(UV_FLAGS) --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

lock:
	$(venv_with_uv)
	$(BIN)/uv pip compile $(UV_FLAGS) pyproject.toml $(LOCK_EXTRAS:%=--extra %) --generate-hashes \
		--custom-compile-command "make lock" $(LOCK_ARGS) -o $(LOCK)
	$(LOCK_TOOL) stamp $(LOCK)

lock-check:
	$(LOCK_TOOL) check $(LOCK)

## The docs site (mkdocs.yml, docs/): served on loopback, rebuilt on every change; docs-build is
## CI's strict build (a warning — broken link, anchor or reference — fails) into site/.
DOCS_PORT ?= 8000
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

docs-build: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

## Main job: a ResNet on the embedded synthetic data, fold 0, logged to MLflow.
train: install
	$(BIN)/python train.py $(ARGS)

## Default test suite (slow tests excluded). pytest's exit 5 (no tests) fails the target.
test: install
	$(BIN)/python -m pytest -q $(ARGS)

test-slow: install
	$(BIN)/python -m pytest -q -m slow $(ARGS)

test-all: install
	$(BIN)/python -m pytest -q -m "slow or not slow" $(ARGS)

## Speed benchmarks (ratios measured side by side), published in BENCHMARKS.md's speed section.
bench: install
	sed -e 's/ \\$$//' -e '/^ *--hash/d' $(LOCK) > $(VENV)/lock-constraints.txt  # pins, no hashes
	$(BIN)/python -m pip install --quiet -c $(VENV)/lock-constraints.txt -e '.[bench]'  # the locked versions stay
	$(BIN)/python benchmarks/speed.py $(ARGS)

## Scale benchmark (issue 37): synthetic UKB-like cohorts of 1k, 5k, 20k records at 500 Hz through
## cache, features, a 1-epoch ResNet run, an XGBoost fit and scoring; time, peak memory, disk,
## growth exponents, projections to 42,648 records. Writes under $TMPDIR/ecg_mi_scale (or
## ARGS="--work-dir DIR"); ARGS=--publish fills BENCHMARKS.md's scale section.
scale: install
	$(BIN)/python benchmarks/scale.py $(ARGS)

## The full benchmark on PTB-XL: every model config (conf/model/) and the best recipe's ensembles x 5 folds, evaluate.py, then BENCHMARKS.md's
## benchmark section + docs/figures/. A re-run skips the runs that already finished.
benchmark: install
	$(BIN)/python benchmarks/ptbxl_benchmark.py $(ARGS)

## The best recipe (issue 18, conf/experiment/best_cpu.yaml): train its three models x 5 folds,
## report with the candidate ensembles' rows (reports/ecg-mi-best_cpu/), register as ecg-mi@best
## the model or ensemble with the best validation AUC (model_name=chosen; the report's "Chosen on validation").
BEST_ENSEMBLES = resnet_beat+extra_trees+xgboost,resnet_beat+extra_trees,extra_trees+xgboost,resnet_beat+xgboost
best: install
	$(BIN)/python train.py -m experiment=best_cpu
	$(BIN)/python evaluate.py experiment_name=ecg-mi-best_cpu 'ensembles=[$(BEST_ENSEMBLES)]' paper=true
	$(BIN)/python evaluate.py experiment_name=ecg-mi-best_cpu register=ecg-mi model_name=chosen 'ensembles=[$(BEST_ENSEMBLES)]' alias=best

## Serve a packaged model over HTTP on loopback with its input gate (src/ecg_mi/serve.py):
## make serve MODEL=models:/ecg-mi@best; POST {"inputs": [N x 12 x L mV]} to /invocations.
SERVE_PORT ?= 5002
serve: $(if $(MODEL),install,serve-needs-model)
	$(BIN)/python -m ecg_mi.serve --model-uri "$(MODEL)" --host 127.0.0.1 --port $(SERVE_PORT)

serve-needs-model:  # checked before the install
	@echo "error: MODEL: missing; make serve MODEL=<model URI, e.g. models:/ecg-mi@best>" >&2; exit 2

## MLflow UI over the default store, on loopback only. MLflow 3 opens in its GenAI view (traces, no
## Model registry); UI_URL opens the model-training view (runs, logged models, registry) for that
## page, and a click on "Model training" at the top of the sidebar keeps it (the browser remembers).
UI_URL = http://127.0.0.1:$(UI_PORT)/#/experiments?workflowType=machine_learning
ui: install
	@echo "MLflow UI, model-training view: $(UI_URL)"
	@echo "  (to keep that view: open http://127.0.0.1:$(UI_PORT) once and click 'Model training' at the top of the sidebar)"
	$(BIN)/mlflow ui --backend-store-uri "$(MLFLOW_URI)" --host 127.0.0.1 --port $(UI_PORT)

## Shared MLflow tracking server: runs logged with tracking.uri=http://$(SERVER_HOST):$(SERVER_PORT);
## the server owns the database (migrates it at start) and stores/serves the artifacts.
## PostgreSQL: make mlflow-server SERVER_BACKEND=postgresql://mlflow:PASSWORD@dbhost:5432/mlflow
mlflow-server: install
	$(BIN)/mlflow server --backend-store-uri "$(SERVER_BACKEND)" --serve-artifacts \
		--artifacts-destination "$(SERVER_ARTIFACTS)" --host $(SERVER_HOST) --port $(SERVER_PORT)

lint: install
	$(BIN)/ruff check src tests benchmarks tools docs/hooks.py train.py evaluate.py predict.py

## What a run can rebuild: caches, Hydra outputs, reports. Never the tracked results (STORES).
clean:
	rm -rf .cache outputs multirun lightning_logs reports .pytest_cache

## The tracked results themselves: every MLflow run, registered model and Optuna study here.
STORES = mlflow.db mlflow.db-journal mlflow.db-wal mlflow.db-shm mlflow.db.lock mlflow-server.db* \
	mlartifacts mlruns optuna.db
clean-store:
	$(if $(filter 1,$(CONFIRM)),,$(error error: clean-store: would delete every tracked run ($(STORES)); \
		run make clean-store CONFIRM=1 to delete them))
	rm -rf $(STORES)
