# One command each on a fresh machine: `make demo`, `make test`. Both install first when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test fuzz bench lint nightly clean protos

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

# The property tests with fresh random examples, 2000 each (make test draws a fixed set).
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q tests/tfbundle tests/recovery/stores/test_names.py \
		tests/recovery/test_listing.py tests/recovery/test_staged_paths.py

bench: $(STAMP)
	$(PY) -m benchmarks

# Nightly audit: make nightly ROOTS="gs://a/runs s3://b/runs" REPORT_DIR=gs://a/ckpt-reports [VAULT=URL] [REGISTRY=FILE] [NIGHTLY_ARGS=...]
# Each night writes REPORT_DIR/YYYY-MM-DD (UTC); every night keeps its memory in one vault, by default
# REPORT_DIR/vault (docs/vault.md). REGISTRY defaults to the example registry shipped in the package.
REGISTRY ?= pipeline/resources/architectures.yaml
VAULT ?= $(REPORT_DIR)/vault
nightly: $(STAMP)
	@test -n "$(ROOTS)" -a -n "$(REPORT_DIR)" || { echo "usage: make nightly ROOTS='gs://a/runs ...' REPORT_DIR=gs://a/reports [VAULT=URL] [REGISTRY=FILE] [NIGHTLY_ARGS=...]"; exit 2; }
	$(VENV)/bin/ckpt-rescue audit $(ROOTS) --report-dir $(REPORT_DIR)/$$(date -u +%Y-%m-%d) --vault $(VAULT) --registry $(REGISTRY) $(NIGHTLY_ARGS)

# The project's own .proto files -> committed *_pb2.py (+ .pyi). protoc 31.1 (grpcio-tools 1.74.0)
# writes gencode 6.31.1, which every protobuf runtime pyproject.toml allows (>=6.31.1,<7) accepts.
GRPCIO_TOOLS := 1.74.0
PROTOS := tfbundle/protos/tensor_bundle.proto tfbundle/protos/trackable_object_graph.proto \
	recovery/protos/saved_model.proto recovery/protos/checkpoint_state.proto

protos: $(STAMP)
	$(PY) -m pip install --quiet "grpcio-tools==$(GRPCIO_TOOLS)"
	$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. $(PROTOS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
