# The two commands a newcomer needs: `make demo` and `make test`. Both install first when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test clean

install: $(STAMP)

# Re-install only when the package's declared dependencies change.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

# The main job on the built-in dataset: train, evaluate, predict, in a few minutes on a 2-core CPU.
demo: $(STAMP)
	$(BIN)/imgclf train builtin:digits --model simple_cnn --epochs 15 --img-size 32 --out runs/demo --overwrite
	$(BIN)/imgclf evaluate runs/demo
	$(BIN)/imgclf predict runs/demo builtin:digits --limit 5

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
