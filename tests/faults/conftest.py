"""Fixtures of the fault suites.

Every test starts its own playground in its own temporary directory, on fresh loopback ports, and
stops it (and every process it started) before it returns, so the suites run in parallel under
xdist. The helpers live in ``fault_helpers.py``.
"""

from __future__ import annotations

import logging

import pytest


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """gitops-canary's log records at INFO and above, as an operator would read them."""
    caplog.set_level(logging.INFO, logger="gitops_canary")
    return caplog
