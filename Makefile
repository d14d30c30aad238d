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

.PHONY: demo test test-fast setup lock clean bench-setup bench-trl verl-setup test-verl

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

# benchmarks/vs_trl.py: prmrl against TRL's GRPOTrainer, in a venv of its own (.venv-bench) so the
# test venv stays locked. TRL is the pinned `bench` extra (pyproject.toml); the lock applies to
# every package the two venvs share, TRL's own requirements (datasets, pandas, pyarrow) float.
# Arguments: make bench-trl BENCH_ARGS="--rounds 3 --json runs/vs_trl.json"
BENCH_VENV  := .venv-bench
BENCH_PY    := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.installed
BENCH_ARGS  ?=

$(BENCH_STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --quiet "pip>=23.3"
	$(BENCH_PY) -m pip install --quiet -c $(LOCK) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch==2.13.0
	$(BENCH_PY) -m pip install --quiet -c $(LOCK) -e ".[bench]"
	touch $(BENCH_STAMP)

bench-setup: $(BENCH_STAMP)

bench-trl: $(BENCH_STAMP)
	$(BENCH_PY) benchmarks/vs_trl.py $(BENCH_ARGS)

# prmrl inside verl (tests/verl): verl 0.9.1 in a venv of its own (.venv-verl). verl asks
# transformers<5.11 and hydra-core 1.3 (ANTLR 4.9; the main lock pins 4.13.2 for math-verify):
# the lock applies to every other shared package; prmrl goes in with --no-deps, its deps listed.
VERL_VENV  := .venv-verl
VERL_PY    := $(VERL_VENV)/bin/python
VERL_STAMP := $(VERL_VENV)/.installed
VERL_SPEC  ?= verl==0.9.1

$(VERL_STAMP): pyproject.toml $(LOCK)
	rm -rf $(VERL_VENV)
	$(PYTHON) -m venv $(VERL_VENV)
	$(VERL_PY) -m pip install --quiet "pip>=23.3"
	$(VERL_PY) -m pip install --quiet -c $(LOCK) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch==2.13.0
	grep -viE '^(transformers|huggingface_hub|tokenizers|antlr4-python3-runtime)==' $(LOCK) > $(VERL_VENV)/constraints.txt
	$(VERL_PY) -m pip install --quiet -c $(VERL_VENV)/constraints.txt "$(VERL_SPEC)" "hydra-core>=1.3.2,<1.4" \
	    cachetools fastapi uvicorn "math-verify[antlr4-9-3]>=0.7" "matplotlib>=3.8" "pyyaml>=6" "tqdm>=4.66" \
	    "pytest>=8" "hypothesis>=6.100"
	$(VERL_PY) -m pip install --quiet --no-deps -e .
	$(VERL_PY) -m pip check
	touch $(VERL_STAMP)

verl-setup: $(VERL_STAMP)

test-verl: $(VERL_STAMP)
	HF_HUB_OFFLINE=1 $(VERL_PY) -m pytest -q -rs tests/verl tests/test_verl_contract.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(VERL_VENV) runs cache
