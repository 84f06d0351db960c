# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   install everything (locked) and run the whole chain on the bundled sample
#   make test   install everything (locked) and run the tests (the whole suite, as CI does)
#   make test-fast   the unit tier only (pytest -m "not slow", two workers)
UV_VERSION := 0.9.5
PYTHON ?= python3
UV := $(or $(shell command -v uv 2>/dev/null),$(HOME)/.local/bin/uv)

.PHONY: install demo test test-fast bench ui clean

$(UV):
	$(PYTHON) -m pip install --quiet --user "uv==$(UV_VERSION)" || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"

# the test extra brings pytest, hypothesis and the LiteLLM gateway; ray the optional Ray engine (its tests need it)
EXTRAS ?= --extra ray

install: $(UV)
	$(UV) sync --locked --extra test $(EXTRAS) --compile-bytecode --python $(PYTHON)

demo: install
	.venv/bin/tunegate demo

test: install
	.venv/bin/pytest

test-fast: install
	.venv/bin/pytest -m "not slow" -n 2 --dist loadfile

bench: install
	.venv/bin/python benchmarks/bench_masking.py
	.venv/bin/python benchmarks/bench_dedup.py

ui: install
	.venv/bin/tunegate ui

clean:
	rm -rf warehouse/landing warehouse/raw warehouse/datasets warehouse/reports warehouse/provider warehouse/.dagster warehouse/catalog.duckdb warehouse/sample_manifest.json
