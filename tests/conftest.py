"""Suite-wide isolation: on-demand ONNX exports go to a temporary cache, never the user's ~/.cache."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_model_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSTVSC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "mstvsc-cache"))
