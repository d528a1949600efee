"""Fixtures and markers several test files share.

``@pytest.mark.sklearn`` marks a test that needs scikit-learn (the estimators, or the iris,
wine, breast-cancer and diabetes tables it bundles): without it installed, the test is
skipped, saying so, instead of failing.
"""

from __future__ import annotations

import pytest


def _has_sklearn() -> bool:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True


HAS_SKLEARN = _has_sklearn()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sklearn: needs scikit-learn (skipped without it)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAS_SKLEARN:
        return
    skip = pytest.mark.skip(reason="needs scikit-learn (pip install 'layerwise[sklearn]')")
    for item in items:
        if item.get_closest_marker("sklearn") is not None:
            item.add_marker(skip)


@pytest.fixture
def in_tmp_path(tmp_path, monkeypatch):
    """Run the test in its own folder, so a default ``runs/`` never lands in the repo."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
