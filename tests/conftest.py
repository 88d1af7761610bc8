"""What every test layer shares: one whole-program run per stack for the whole session.

Runs are computed lazily, once per stack per session (per worker under pytest-xdist), and
handed to every test that asks for `program_runs`.
"""

from __future__ import annotations

import pytest

from tests.helpers import ProgramRuns


@pytest.fixture(scope="session")
def program_runs() -> ProgramRuns:
    return ProgramRuns()
