"""Invariant 1 under faults: the reduced chaos matrix (the full one: `evmonitor chaos`)."""

from __future__ import annotations

import pytest

from evmonitor.stack.chaos import FAULTS, run_cell
from tests.integration.conftest import ADMIN_URL


@pytest.mark.parametrize("fault", FAULTS)
def test_killing_or_cutting_off_one_part_mid_stream_loses_and_doubles_nothing(fault, tmp_path, pg_admin):
    """SIGKILL/cut-off of one process or store during traffic: 0 lost, 0 duplicated, exact totals."""
    result = run_cell(fault, events=2000, seed=17, workdir=tmp_path, admin_url=ADMIN_URL, say=lambda _: None)
    assert (result.lost, result.duplicated) == (0, 0), result.detail
    assert result.exact, result.detail


def test_two_faults_at_once_still_reconcile(tmp_path, pg_admin):
    """Redis and the bridge die together: still 0 lost, 0 duplicated."""
    result = run_cell("bridge+redis", events=2000, seed=23, workdir=tmp_path, admin_url=ADMIN_URL, say=lambda _: None)
    assert result.exact and (result.lost, result.duplicated) == (0, 0), result.detail
