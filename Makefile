# Two commands for a fresh clone: `make run` (set up .venv, run the pipeline) and `make test`.
VENV ?= .venv
PYTHON ?= python3
PORT ?= 5000
# `make server`: the team's tracking server (see docs/team.md).
SERVER_HOST ?= 127.0.0.1
SERVER_PORT ?= 5050
STUDY_PORT ?= 5051
ALLOWED_HOSTS ?=
DATA_DIR ?= .team-server
AUTH ?=
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
export PYTHONPATH := $(abspath src)

.PHONY: setup run push test lint format ui compare plots-template server teammate screenshots clean bench lag-sweep sunspots folds tune-worker relocate-store

setup: $(STAMP)

# Re-installs only when requirements.txt changes; exact pins, so every clone gets the same set.
# pip shows each package it fetches, with a progress bar per download: the first install takes
# minutes (torch alone unpacks to about 750 MB), and a silent terminal looks like a hang.
$(STAMP): requirements.txt
	@echo "Installing $$(grep -c '==' requirements.txt) pinned packages into $(VENV); the first time takes minutes"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install -r requirements.txt
	touch $@

# Remove what a deleted model entry left behind (its outputs and dvc.lock entry, which DVC
# keeps; before `dvc repro`, as evaluate reads the models/ folder), `dvc repro`, then make sure
# the MLflow store holds a record of this configuration (re-running, byte-identically, the
# stages DVC skipped when evaluation has no run, e.g. after deleting mlflow.db or in a fresh
# clone whose committed reports are up to date).
# With a default DVC remote, `dvc repro --pull` first fetches the outputs (and run-cache entries)
# a teammate pushed with `make push`, so an unchanged commit runs nothing: training on another
# CPU gives other bytes (docs/reproducibility.md), fetching them gives the same.
run: setup
	python -m lstm_vs_rnn.commands.prune
	if dvc remote default >/dev/null 2>&1; then dvc repro --pull; else dvc repro; fi
	python -m lstm_vs_rnn.commands.ensure_recorded

# After moving or copying the project (with mlflow.db and mlartifacts/): point the MLflow store's
# artifact paths at this folder (a stage refuses to log while they name the old one).
relocate-store: setup
	python -m lstm_vs_rnn.commands.relocate_store

# Outputs and the run-cache (which stage run gave which outputs) to the default DVC remote.
push: setup
	dvc push --run-cache

test: setup lint
	pytest

lint: setup
	ruff check .
	ruff format --check .

format: setup
	ruff check --fix .
	ruff format .

# The MLflow UI on 127.0.0.1 for the project's store; `make ui PORT=5001` for another port.
ui: setup
	python -m lstm_vs_rnn.commands.ui --port $(PORT)

# DVC experiments side by side in 100 columns: each model's test RMSE and the params that differ.
# `make compare ARGS=-A` passes options on to `dvc exp show` (here: experiments of all commits).
compare: setup
	python -m lstm_vs_rnn.commands.experiments_table $(ARGS)

# Rebuild .dvc/plots/offline.html (dvc plots without a CDN) from the npm registry's packages.
plots-template: setup
	python tools/offline_plots_template.py .dvc/plots/offline.html

# PostgreSQL + `mlflow server` for a team; prints MLFLOW_TRACKING_URI=...; Ctrl-C stops both.
# `make server AUTH=1` needs MLFLOW_AUTH_ADMIN_PASSWORD and MLFLOW_FLASK_SERVER_SECRET_KEY.
server: setup
	python -m lstm_vs_rnn.commands.team_server --host $(SERVER_HOST) --port $(SERVER_PORT) \
	  --study-port $(STUDY_PORT) \
	  --data-dir $(DATA_DIR) $(if $(ALLOWED_HOSTS),--allowed-hosts $(ALLOWED_HOSTS)) $(if $(AUTH),--auth)

# Another machine's clone joins the running tuning studies (docs/tuning.md): set OPTUNA_STORAGE
# to the URL `make server` printed; takes trials until none is left, waiting up to WAIT seconds
# for `dvc repro` on the first machine to create each study.
WAIT ?= 600
tune-worker: setup
	dvc repro scale
	python -m lstm_vs_rnn.commands.tune_worker --wait $(WAIT) $(ARGS)

# Add a user to a server started with AUTH=1 and grant EDIT on the experiment (run as admin).
teammate: setup
	@test -n "$(NAME)" || { echo "error: give the user name: make teammate NAME=alice" >&2; exit 1; }
	python -m lstm_vs_rnn.commands.teammates $(NAME)

# The screenshots of the MLflow UI in docs/mlflow.md, from a real run of the browser test (needs
# Chromium).
screenshots: setup
	@test -x /usr/bin/chromium || { echo "error: /usr/bin/chromium is missing; apt-get install chromium" >&2; exit 1; }
	UI_SCREENSHOT_DIR=$(abspath docs/screenshots) pytest -q -s tests/test_ui_browser.py

# Benchmarks (about 25 minutes on 2 cores): training throughput, the edit-repro loop, a
# 10^6-point run, tracking overhead, and this code against a base commit's (BENCH_BASE=...),
# printed as one table. `python -m benchmarks --smoke`
# runs them at a tiny size.
bench: setup
	python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache dvc_plots

# The lag sweep: one DVC experiment per lag on the lagged series, run two at a time, then
# reports/lag_sweep.csv and reports/figures/lag_sweep.png (docs/results.md, "Which model learns
# longer lags?"). `make lag-sweep ARGS=--report-only` redraws from the experiments already run.
lag-sweep: setup
	python -m lstm_vs_rnn.commands.lag_sweep $(ARGS)

# Reports of runs beyond the default (docs/results.md), each one DVC experiment whose reports
# are copied from its commit into reports/<target>/, to be committed beside the main results:
# `folds`, the default series on two rolling-origin folds (what the README quotes; 6.5 minutes
# on 2 cores, past the default's time budget), and `sunspots`, the shipped yearly sunspots on
# the same two folds.
EXPERIMENT_REPORTS = metrics.json claims.md plots/repeats.csv plots/horizon.csv \
  figures/repeats.png figures/paired_differences.png
folds: EXPERIMENT_SETS = -S 'evaluate.folds=[0,1]'
sunspots: EXPERIMENT_SETS = -S data.source=csv -S 'evaluate.folds=[0,1]'
folds sunspots: setup
	dvc exp remove $@ >/dev/null 2>&1 || true  # an earlier run's, so the name is free
	dvc exp run -n $@ $(EXPERIMENT_SETS)
	mkdir -p reports/$@
	rev=$$(git for-each-ref --count=1 --sort=-committerdate --format='%(objectname)' \
	  'refs/exps/*/*/$@') && \
	for file in $(EXPERIMENT_REPORTS); do \
	  git show "$$rev:reports/$$file" > "reports/$@/$$(basename $$file)" || exit 1; \
	done
