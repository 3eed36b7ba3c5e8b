"""Flow scores are deterministic: same answer run to run, per engine, per block split and thread."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from click.testing import CliRunner

from uda.cli.main import cli
from uda.forecasting.evaluation import evaluate
from uda.forecasting.neighbours import neighbour_signal
from uda.forecasting.panel import Calendar, Context, Panel
from uda.forecasting.protocol import block_error_sums, make_protocol
from uda.store import open_dataset
from uda.tasks.base import compare_answers
from uda.tasks.flow import run

MODELS = "last,snaive_day,ha,hw,ridge,ridge_sp"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """30 sensors for 14 days written in several traffic files (several Dask blocks)."""
    out = tmp_path_factory.mktemp("flowdet") / "d"
    res = CliRunner().invoke(cli, ["generate", "--scale", "tiny", "--sensors", "30", "--days", "14",
                                   "--seed", "5", "--tables", "traffic", "--chunk-rows", "30000",
                                   "--workers", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def _panel(n: int = 24, days: int = 21, seed: int = 0) -> Panel:
    rng = np.random.default_rng(seed)
    t = np.arange(days * 48)
    base = 100 + 50 * np.sin(2 * np.pi * t / 48)
    Y = base[None, :] * rng.uniform(0.5, 2.0, (n, 1)) + rng.normal(0, 10, (n, t.size))
    Y[rng.random(Y.shape) < 0.05] = np.nan
    return Panel(Y, [f"s{i}" for i in range(n)], np.datetime64("2024-01-01T00:00"), 1800)


def test_dask_over_several_files_matches_polars_and_itself(dataset):
    assert len(open_dataset(dataset).files("traffic")) >= 3  # the Dask path fits several blocks
    kw = {"models": MODELS, "horizons": "1,3,6"}
    a = run(dataset, engine="polars", **kw)
    b = run(dataset, engine="dask", scheduler="threads", **kw)
    c = run(dataset, engine="dask", scheduler="threads", **kw)
    assert compare_answers(a.answer, b.answer, rtol=1e-9) == []
    for k in a.answer:
        np.testing.assert_array_equal(b.answer[k], c.answer[k])
    p2 = run(dataset, engine="polars", **kw)
    for k in a.answer:
        np.testing.assert_array_equal(a.answer[k], p2.answer[k])


@pytest.mark.parametrize("partitions", [1, 2, 5])
def test_scores_do_not_depend_on_the_block_split(partitions):
    # no adjacency: neighbours are picked by correlation over all series, whatever the split
    panel = _panel()
    ref = evaluate(panel, engine="polars", models=MODELS, horizons="1,3")
    got = evaluate(panel, engine="dask", scheduler="threads", models=MODELS, horizons="1,3",
                   partitions=partitions)
    for m in ref["models"]:
        for h, r in ref["models"][m].items():
            assert got["models"][m][h]["n"] == r["n"]
            np.testing.assert_allclose(got["models"][m][h]["mae"], r["mae"], rtol=1e-12)
            np.testing.assert_allclose(got["models"][m][h]["rmse"], r["rmse"], rtol=1e-12)


def test_kernels_called_from_many_threads_at_once_give_the_serial_result():
    # Dask's threaded scheduler runs several blocks' Numba kernels at the same time: no shared
    # scratch state may leak between the calls
    panel = _panel(n=160)
    Y = panel.values
    proto = make_protocol(Y.shape[1], 48, np.array([1, 3, 6]))
    cal = Calendar.regular(panel.start, panel.interval_s, Y.shape[1])
    n = Y.shape[0]
    indptr = np.arange(0, 2 * n + 1, 2, dtype=np.int64)
    indices = np.array([(i + k) % n for i in range(n) for k in (1, 2)], dtype=np.int64)
    nb = neighbour_signal(Y, proto.train_end, indptr, indices)
    models = MODELS.split(",")

    def block(k):
        rows = slice(40 * (k % 4), 40 * (k % 4) + 40)
        return block_error_sums(Y[rows], Context(cal, nb[rows]), proto, models)

    serial = [block(k) for k in range(4)]
    with ThreadPoolExecutor(8) as ex:
        parallel = list(ex.map(block, range(32)))
    for k, got in enumerate(parallel):
        for m in models:
            np.testing.assert_array_equal(got[m]["sums"], serial[k % 4][m]["sums"])
