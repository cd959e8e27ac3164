"""The ``slow_learning`` marker: learning tests too slow for the default CI tier.

They are skipped unless selected explicitly (``-m slow_learning``) or ``AMAGO_SLOW_LEARNING=1`` is
set, so the default ``pytest tests/learning`` stays inside the CI budget without an ``addopts``.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow_learning: learning tests excluded from the default CI tier")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if (
        "slow_learning" in (config.getoption("markexpr") or "")
        or os.environ.get("AMAGO_SLOW_LEARNING") == "1"
    ):
        return
    skip = pytest.mark.skip(reason="slow_learning: run with -m slow_learning or AMAGO_SLOW_LEARNING=1")
    for item in items:
        if "slow_learning" in item.keywords:
            item.add_marker(skip)
