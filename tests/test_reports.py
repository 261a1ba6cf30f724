"""CI regenerates the tables that are deterministic on a CPU and fails when the committed reports/ copy is stale."""
from pathlib import Path

import pytest

from lsbench.report.flags import check_table
from lsbench.report.render import stale_files
from lsbench.report.tables import deterministic_table, reported_figure_table

TABLES = Path(__file__).resolve().parents[1] / "reports" / "tables"
COMMAND = "lsbench table --deterministic"


@pytest.fixture(scope="module")
def regenerated():
    return deterministic_table()


def test_committed_deterministic_table_is_fresh(regenerated):
    stale = stale_files(regenerated, TABLES, "deterministic", command=COMMAND)
    assert not stale, f"stale: {stale}; regenerate with `{COMMAND}`"


def test_committed_published_figures_are_fresh():
    stale = stale_files(reported_figure_table(), TABLES, "published_figures", command=COMMAND)
    assert not stale, f"stale: {stale}; regenerate with `{COMMAND}`"


def test_measured_params_and_macs_match_every_published_figure(regenerated):
    assert check_table(regenerated) == []
    lsnet = regenerated.set_index("model").loc[["lsnet_t", "lsnet_s", "lsnet_b"]]
    assert list(lsnet["gmacs_fvcore"].round(4)) == [0.3163, 0.5385, 1.2475]
