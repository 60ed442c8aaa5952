# One command each on a fresh machine: `make demo`, `make test`. Both install first when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test bench lint nightly clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m pipeline demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m benchmarks

# Nightly audit: make nightly ROOTS="gs://a/runs s3://b/runs" REPORT_DIR=gs://a/ckpt-reports [REGISTRY=FILE] [NIGHTLY_ARGS=...]
# REGISTRY defaults to the example registry shipped in the package (the sample models).
REGISTRY ?= pipeline/resources/architectures.yaml
nightly: $(STAMP)
	@test -n "$(ROOTS)" -a -n "$(REPORT_DIR)" || { echo "usage: make nightly ROOTS='gs://a/runs ...' REPORT_DIR=gs://a/reports [REGISTRY=FILE] [NIGHTLY_ARGS=...]"; exit 2; }
	$(VENV)/bin/ckpt-rescue audit $(ROOTS) --report-dir $(REPORT_DIR)/$$(date -u +%Y-%m-%d) --registry $(REGISTRY) $(NIGHTLY_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
