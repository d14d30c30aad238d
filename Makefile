# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Exact versions of every dependency (the stack the README's figures came from), written by
# scripts/lock.py; pyproject.toml keeps ranges for library users.
LOCK   := constraints.txt
# Where the CPU build of torch comes from. Empty: pip's own configuration (on the development
# machines, a local wheel folder). Elsewhere: make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu
# (PyPI's Linux x86 wheel of torch 2.13.0 is the CUDA build, which pulls the CUDA packages).
TORCH_INDEX ?=

.PHONY: demo test test-fast setup lock clean

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	# pip >= 23.3 matches extras as PEP 685 normalises them (math-verify[antlr4-13-2] and the
	# latex2sympy2_extended extra it asks for); older pips warn and skip the ANTLR pin.
	$(PY) -m pip install --quiet "pip>=23.3"
	# torch is pinned (an unpinned one would pull several GB of CUDA packages); TORCH_INDEX above.
	$(PY) -m pip install --quiet -c $(LOCK) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch==2.13.0
	$(PY) -m pip install --quiet -c $(LOCK) -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/prmrl demo

# -rs: every skipped test and its reason (tests that need the sibling ../shared folder name
# the missing path), after the counts.
test: $(STAMP)
	$(PY) -m pytest -q -rs tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -rs -m "not slow" tests

# Rewrite $(LOCK) from the venv as it is now (after upgrading a package there and rerunning
# the tests); the venv then matches the lock, so set-up is not rerun.
lock:
	$(PY) scripts/lock.py --output $(LOCK)
	touch $(STAMP)

clean:
	rm -rf $(VENV) runs cache
