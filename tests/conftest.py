"""Shared fixtures. Tiny models run fastest on one thread here (and don't fight over cores
when pytest and other work share the machine)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # before torch starts its thread pool

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.exists():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session", autouse=True)
def _quiet_transformers():
    from prmrl.models.factory import quiet_transformers

    quiet_transformers()
