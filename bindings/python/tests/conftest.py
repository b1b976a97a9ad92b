"""Shared fixtures: where the repository, ../shared and the test models are."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def shared_dir() -> Path:
    """$INFER_SHARED, else ../shared beside the repository root."""
    env = os.environ.get("INFER_SHARED")
    return Path(env).resolve() if env else (REPO.parent / "shared").resolve()


@pytest.fixture(scope="session")
def shared() -> Path:
    return shared_dir()


@pytest.fixture(scope="session")
def stories(shared: Path) -> tuple[str, str]:
    """(model, tokenizer) paths of llama2.c stories260K."""
    model, tok = shared / "models" / "stories260K.bin", shared / "models" / "tok512.bin"
    if not model.exists() or not tok.exists():
        pytest.skip(f"stories260K.bin / tok512.bin not found under {shared}/models (set INFER_SHARED)")
    return str(model), str(tok)
