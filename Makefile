# mmgym: every target creates .venv (pinned by constraints.txt) when it is missing or stale.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
EXTRAS ?= train,ray,live,dev

.PHONY: install demo paper test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (mmgym needs Python 3.11; set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

paper: $(STAMP)
	$(PY) scripts/paper.py

lint: $(STAMP)
	$(PY) -m ruff check mmgym agents experiments docs/tools scripts tests
	$(PY) -m ruff format --check mmgym agents experiments docs/tools scripts tests
	$(PY) -m mypy

test: $(STAMP) lint
	$(PY) -m pytest -q -n auto --dist worksteal

bench: $(STAMP)
	$(PY) scripts/bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache outputs runs
