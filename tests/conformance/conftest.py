"""The ``driver`` fixture: every conformance test runs once per driver in platform_drivers.DRIVERS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from platform_drivers import DRIVERS, Driver


@pytest.fixture(params=sorted(DRIVERS))
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    with DRIVERS[request.param](tmp_path) as made:
        yield made
