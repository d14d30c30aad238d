"""Shared fixtures. Tiny models run fastest on one thread here (and don't fight over cores
when pytest and other work share the machine).

The sibling ``../shared`` folder (datasets under ``data/``, real tokenizers under
``tokenizers/``) is on the development machine only, never in a user's clone. A test that reads
one of its files says which, and is skipped with a reason naming each missing path without it:

* ``@pytest.mark.needs_shared("tokenizers/mistral-7b-v0.1", "data/gsm8k/test.jsonl")`` on a test,
  a ``pytest.param`` or a module's ``pytestmark``: skipped at collection (before any fixture
  runs), reported at the test's own line;
* the ``shared_path`` fixture gives the path: ``shared_path("tokenizers/qwen2.5-instruct")``
  (it skips too, should a mark be missing).

Everything else generates its small inputs itself or has a few lines written in the test (never
copied from the datasets), so ``pytest`` in a clone without ``../shared`` passes; ``make test``
runs it with ``-rs``, which lists every skip and its reason.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # before torch starts its thread pool

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def missing_shared(*rel: str) -> list[str]:
    """The paths among ``rel`` (relative to ../shared) that do not exist."""
    return [r for r in rel if not (SHARED / r).exists()]


def shared_skip_reason(missing: list[str]) -> str:
    names = ", ".join(f"../shared/{r}" if r else "../shared" for r in missing)
    return f"needs {names} (not found under {SHARED})"


def require_shared(*rel: str) -> Path:
    """The first path under ../shared (all of ``rel`` must exist), or skip naming what is missing."""
    missing = missing_shared(*rel)
    if missing:
        pytest.skip(shared_skip_reason(missing))
    return SHARED / rel[0]


def pytest_collection_modifyitems(config, items):
    for item in items:
        paths = [p for m in item.iter_markers("needs_shared") for p in m.args]
        missing = missing_shared(*dict.fromkeys(paths))
        if missing:
            item.add_marker(pytest.mark.skip(reason=shared_skip_reason(missing)))


@pytest.fixture(scope="session")
def shared_path():
    """``shared_path("data/gsm8k/test.jsonl", ...)``: ../shared/<first path>, or skip the test
    naming every missing one."""
    return require_shared


@pytest.fixture(scope="session")
def shared() -> Path:
    """The ../shared folder itself, or a skip (prefer ``shared_path`` with the exact files)."""
    return require_shared("")


@pytest.fixture(scope="session", autouse=True)
def _quiet_transformers():
    from prmrl.models.factory import quiet_transformers

    quiet_transformers()
