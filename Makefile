# The two commands of the quick start, for a fresh Debian machine with Python 3.11, 3.12 or 3.13.
# Each sets up what is missing (and nothing twice), then runs:
#   make run     the pipeline on its default data set    make run ARGS="--data-dataset synthetic"
#   make test    the full test set, as CI runs it
#   make test-fast   the tests that need neither containers, an object store nor minutes of training
#   make mlflow  an MLflow tracking server on 127.0.0.1:5000 for Track and Promote (its own venv)
#   make lock    regenerate requirements/*.txt from pyproject.toml's ranges (UPGRADE=package or all)
#   make torch-env   the optional PyTorch peer's environment for benchmarks.train_throughput
# Root or sudo is needed only to install Debian packages that are missing.

PYTHON ?= python3
VENV := .venv
ARGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# What the tests use from Debian: real Fashion-MNIST, Chromium for the HTML report, g++ for the
# fused ops, podman for the container tests (podman-compose comes with the project's test extra) with
# netavark and aardvark-dns, without which a compose network has no DNS (containers cannot reach each
# other by name), and iptables, which netavark runs to set up a network (installed without
# recommends, podman does not bring it: "netavark: No such file or directory"); OpenStack Swift
# with memcached for the S3 tests (a fixture starts them on loopback);
# munge and Slurm's daemons and client for the one-node cluster of the Slurm tests (a fixture starts it).
TEST_PACKAGES := dataset-fashion-mnist chromium g++ podman netavark aardvark-dns iptables swift-proxy swift-account \
	swift-container swift-object memcached munge slurmctld slurmd slurm-client

# The fast tier: no containers, no object store, no MLflow server, no trainings through the command line, no real data.
FAST_MARKERS := not slow and not container and not s3 and not mlflow and not slurm and not real_data
# What it uses from Debian: g++ for the fused ops' tests.
FAST_PACKAGES := g++

# The MLflow tracking server: its own environment (it needs SQLAlchemy 2, luigid 1.4), its
# SQLite database and artifacts under the outputs directory. It has no authentication: serve other
# hosts only behind one (docs/tracking.md, "A server other hosts reach"), not with MLFLOW_HOST=0.0.0.0.
# MLflow's job runner (GenAI judges, online scoring, trace archival) stays off unless
# MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true: runs and models do not use it, and it starts eight
# more processes that take about 25 s of CPU in the server's first minute.
MLFLOW_VENV := .venv-mlflow
MLFLOW_HOST ?= 127.0.0.1
MLFLOW_PORT ?= 5000
MLFLOW_DIR ?= outputs/mlflow
MLFLOW_WORKERS ?= 1

# The optional PyTorch peer of benchmarks.train_throughput (--torch-python .venv-torch/bin/python):
# torch and numpy alone, outside the lock files, since the pipeline never uses torch. PyPI's torch
# wheels for x86-64 bundle CUDA (several GB); PyTorch's own index has CPU-only ones:
#   make torch-env TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_VENV := .venv-torch
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=

.PHONY: run test test-fast test-packages fast-packages lock mlflow mlflow-env torch-env

run: $(VENV)/.installed
	$(VENV)/bin/luigi --module tasks Evaluate --local-scheduler $(ARGS)

test: $(VENV)/.installed test-packages
	$(VENV)/bin/python -m pytest $(ARGS)

test-fast: $(VENV)/.installed fast-packages
	$(VENV)/bin/python -m pytest -m "$(FAST_MARKERS)" $(ARGS)

# A virtual environment $(1) with exactly the versions and hashes of the lock file $(2).
define locked_venv
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' || \
		{ echo "Python 3.11, 3.12 or 3.13 is needed: make PYTHON=/path/to/python3.13 ..."; exit 1; }
	$(PYTHON) -m venv $(1) || { $(SUDO) apt-get install -y -q python3-venv && $(PYTHON) -m venv $(1); }
	$(1)/bin/pip install -q --upgrade pip
	$(1)/bin/pip install -q --require-hashes -r $(2)
endef

# Exact versions and hashes from the lock (requirements/README.md), then the project itself.
$(VENV)/.installed: pyproject.toml requirements/dev.txt
	$(call locked_venv,$(VENV),requirements/dev.txt)
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

mlflow: $(MLFLOW_VENV)/.installed
	mkdir -p $(MLFLOW_DIR)
	MLFLOW_DISABLE_TELEMETRY=true MLFLOW_SERVER_ENABLE_JOB_EXECUTION=$${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false} \
		exec $(MLFLOW_VENV)/bin/mlflow server --host $(MLFLOW_HOST) --port $(MLFLOW_PORT) \
		--workers $(MLFLOW_WORKERS) --backend-store-uri sqlite:///$(abspath $(MLFLOW_DIR))/mlflow.db \
		--artifacts-destination $(abspath $(MLFLOW_DIR))/artifacts

# The server's environment alone (the tests' MLflow fixture makes it this way).
mlflow-env: $(MLFLOW_VENV)/.installed

$(MLFLOW_VENV)/.installed: requirements/mlflow-server.txt
	$(call locked_venv,$(MLFLOW_VENV),requirements/mlflow-server.txt)
	touch $@

torch-env: $(TORCH_VENV)/.installed

$(TORCH_VENV)/.installed:
	$(PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/pip install -q $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(TORCH_VENV)/bin/pip install -q "numpy>=1.26,<3"
	touch $@

lock: $(VENV)/.installed
	$(VENV)/bin/pip install -q "uv>=0.5,<1"
	UV=$(VENV)/bin/uv UPGRADE=$(UPGRADE) requirements/lock.sh

# Where the machine has no policy-rc.d, one that refuses service starts is in place during the
# install, so that installing Slurm's, munge's and Swift's daemons starts none of them (the tests'
# fixtures start their own).
test-packages fast-packages:
	@missing=$$(for package in $(if $(filter fast-packages,$@),$(FAST_PACKAGES),$(TEST_PACKAGES)); do \
		dpkg -s $$package >/dev/null 2>&1 || echo $$package; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing $$missing"; \
		policy=; if [ ! -e /usr/sbin/policy-rc.d ]; then policy=/usr/sbin/policy-rc.d; \
			printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee $$policy >/dev/null && $(SUDO) chmod 755 $$policy; fi; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
		status=$$?; [ -z "$$policy" ] || $(SUDO) rm -f $$policy; exit $$status; \
	fi
