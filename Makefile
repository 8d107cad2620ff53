# rareflow: the two fresh-machine commands are `make demo` (~4.5 min on 2 busy cores) and `make test` (each sets up .venv first).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= dev,iact,dask

.PHONY: setup demo test bench docs-figures clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU wheel first: a bare `torch` requirement could pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/rareflow compare --out out/demo
	@echo "open out/demo/report.html"

# two workers, one thread each (tests/conftest.py); --dist loadfile keeps a file's module fixtures in one worker
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# Re-run the commands behind the README/docs tables and rewrite the marked blocks (long: ~1-2 h on
# 2 cores; `$(BIN)/python scripts/docs_figures.py demo` for one job, `--list` for the jobs).
docs-figures: $(STAMP)
	$(BIN)/python scripts/docs_figures.py $(JOBS)

clean:
	rm -rf $(VENV) out .pytest_cache
