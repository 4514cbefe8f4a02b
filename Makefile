# The commands the README names. Everything runs from a project-local virtualenv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU torch unless you say otherwise; set TORCH_SPEC / TORCH_INDEX_URL for a CUDA build.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?=

.PHONY: install demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@echo "==> Creating the virtualenv in $(VENV) and installing preflab (a few minutes the first time)"
	$(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || { \
	  echo "==> Installing $(TORCH_SPEC) first (so no CUDA packages are pulled in)"; \
	  $(PY) -m pip install --progress-bar off $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL)) "$(TORCH_SPEC)"; }
	$(PY) -m pip install --progress-bar off -q -e ".[dev]"
	@touch $@

demo: install
	$(PY) manage.py demo

test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check .
	$(PY) manage.py makemigrations --check --dry-run

# Every script runs even when an earlier one fails (claim_bench needs a PostgreSQL
# DATABASE_URL, agreement_bench needs nothing); the target fails if any did.
bench: install
	@status=0; for f in bench/*.py; do echo "==> $$f"; $(PY) $$f || status=1; done; exit $$status

clean:
	rm -rf var/test-*.sqlite3* var/cache
