# Everything a fresh machine needs is done by these targets; see README.md.
VENV ?= .venv
EDGELENS := $(VENV)/bin/edgelens
DATA_DIR ?= data
MODELS := $(DATA_DIR)/models/efficientnet-lite0-fp32.onnx \
          $(DATA_DIR)/models/efficientnet-lite0-fp16.onnx \
          $(DATA_DIR)/models/efficientnet-lite0-int8.onnx
export EDGELENS_DATA_DIR := $(DATA_DIR)
# The real Milvus server scripts/setup.sh installs (tests skip its cases without one).
export EDGELENS_MILVUS_SERVER ?= $(CURDIR)/.venv-milvus/bin/milvus-server

.PHONY: setup models real-views unknown-views test lint demo bench bench-gpu bench-milvus clean

setup: $(VENV)/.installed models real-views

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

models: $(VENV)/.installed
	$(EDGELENS) model export --precision all

# The real-view evaluation set: real second photos from the OpenCV sources on PyPI (once).
real-views: $(DATA_DIR)/real-views/set.json

$(DATA_DIR)/real-views/set.json: $(VENV)/.installed
	$(VENV)/bin/python -c 'from pathlib import Path; from edgelens.evaluation.real_views import \
	fetch_real_views; fetch_real_views(Path("$(DATA_DIR)/real-views"))'

# The unknown set: real photos of things in no catalog, for "no match" (pip and apt-get, once).
unknown-views: $(DATA_DIR)/unknown-views/set.json

$(DATA_DIR)/unknown-views/set.json: $(VENV)/.installed
	$(VENV)/bin/python -c 'from pathlib import Path; from edgelens.evaluation.unknown_views import \
	fetch_unknown_views; fetch_unknown_views(Path("$(DATA_DIR)/unknown-views"))'

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The suite runs on PYTEST_WORKERS processes (pytest-xdist), a test file per process at a time.
PYTEST_WORKERS ?= 2

test: setup lint
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile

demo: setup
	$(EDGELENS) demo

# Every benchmark that runs on this machine, each writing its section of docs/benchmarks.md.
BENCHMARKS = featurizer quality photos verify search live device faults ingress load scaleout \
	memory streams catalog_page catalog_store rollout fuzz_messages

bench: setup unknown-views
	for name in $(BENCHMARKS); do $(VENV)/bin/python -m benchmarks.$$name || exit 1; done

# On a machine with an NVIDIA GPU and onnxruntime-gpu in the venv.
bench-gpu: setup
	$(VENV)/bin/python -m benchmarks.gpu

# Against the real Milvus server that scripts/setup.sh installs in a venv of its own.
bench-milvus: setup
	$(VENV)/bin/python -m benchmarks.milvus --milvus-server $(EDGELENS_MILVUS_SERVER)

clean:
	rm -rf $(VENV) $(DATA_DIR)
