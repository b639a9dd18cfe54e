"""Fixtures of the end-to-end suite: one playground per test, closed at teardown.

Each test gets its own temporary directory, bare repository, simulator, Prometheus and load
tester on fresh loopback ports, so the tests are independent and run in parallel under xdist.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import OpenWorld, World, open_world


@pytest.fixture
def open_playground(tmp_path: Path) -> Iterator[OpenWorld]:
    """``open_playground(**options)`` starts a :class:`World` (see ``open_world``)."""
    worlds: list[World] = []

    def start(**options: Any) -> World:
        world = open_world(tmp_path / f"world-{len(worlds)}", **options)
        worlds.append(world)
        return world

    yield start
    for world in worlds:
        world.close()
