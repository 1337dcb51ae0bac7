# Two commands on a fresh machine: `make demo` and `make test`. Each sets itself up.
PYTHON ?= .venv/bin/python
VENV_STAMP = .venv/.installed

.PHONY: venv demo test fuzz lint format typecheck unasync unasync-check tests test-deps coverage clean httpx-suite requests-suite

venv: $(VENV_STAMP)

$(VENV_STAMP): setup.cfg pyproject.toml
	@command -v python3 >/dev/null || { echo "python3 (3.10+) is required"; exit 1; }
	test -x .venv/bin/python || python3 -m venv .venv
	.venv/bin/python -m pip install --quiet --upgrade pip
	.venv/bin/python -m pip install --quiet -e '.[dev]'
	touch $(VENV_STAMP)

demo: venv
	$(PYTHON) scripts/demo.py

lint: venv
	$(PYTHON) -m ruff check httpcore scripts tests examples
	$(PYTHON) -m ruff format --check httpcore scripts tests examples

format: venv
	$(PYTHON) -m ruff format httpcore scripts tests examples
	$(PYTHON) -m ruff check --fix httpcore scripts tests examples
	$(PYTHON) scripts/unasync.py  # the sync half follows the reformatted async source

typecheck: venv
	$(PYTHON) -m mypy

unasync: venv
	$(PYTHON) scripts/unasync.py

unasync-check: venv
	$(PYTHON) scripts/unasync.py --check

tests: venv
	$(PYTHON) scripts/test_deps.py  # Debian programs the tests run (tinyproxy, microsocks)
	$(PYTHON) -m pytest -n auto --cov --cov-report=term -q

test-deps: venv
	$(PYTHON) scripts/test_deps.py

test: lint typecheck unasync-check tests

# The seeded fuzz, longer than CI's: make fuzz SEED=7 CASES=100000 (HTTP/1.1 cases, sync
# and async each; HTTP/2 gets a fifth as many, or HTTP2_CASES=...).
SEED ?= 1
CASES ?= 50000
HTTP2_CASES ?= $(shell expr $(CASES) / 5)
fuzz: venv
	$(PYTHON) -m tests.fuzzing.run --seed $(SEED) --cases $(CASES) --http2-cases $(HTTP2_CASES)

# httpx 0.28.1's own test suite with this package as its httpcore (own venv: .httpx-suite/).
httpx-suite: venv
	$(PYTHON) scripts/run_httpx_suite.py

# requests 2.34's own test suite with every session on HTTPCoreAdapter (own venv and
# sdist in ~/.cache/httpcore-requests-suite).
requests-suite: venv
	$(PYTHON) scripts/run_requests_suite.py

clean:
	rm -rf .venv .httpx-suite .mypy_cache .ruff_cache .pytest_cache .coverage htmlcov build *.egg-info

-include bench/Makefile.inc
