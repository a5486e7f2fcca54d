"""Fixtures of the groundwater tests: the mf6 executable (tests that need it skip, with the reason, without it)."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mf6_exe() -> Path:
    from phys_ml.stages.common.errors import UserError
    from phys_ml.stages.groundwater.mf6 import find_mf6

    try:
        return find_mf6()
    except UserError as exc:
        pytest.skip(f"MODFLOW 6 not available ({exc}); install it with `phys-ml groundwater install-mf6`")
