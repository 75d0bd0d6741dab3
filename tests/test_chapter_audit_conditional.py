"""The x_t-dependence audit chapter on a small digits run: one row per level and covariate,
the labels come from the conditional sibling, the outputs render and round-trip as an artifact."""

from __future__ import annotations

import numpy as np
import pytest

from vrg_analysis.assumptions.chapters import conditional as chapter
from vrg_analysis.assumptions.verdicts import results_from_csv
from vrg_analysis.studies import artifacts as art

SMALL = dict(timesteps=[100, 500, 900], n=200, reference_rows=300, n_boot=40)


@pytest.fixture(scope="module")
def result(one_torch_thread) -> chapter.Result:
    return chapter.run(chapter.Params(**SMALL))


def test_one_judged_row_per_level_and_covariate(result: chapter.Result) -> None:
    t = result.table
    assert len(result.results) == len(t) == 3 * 3
    assert set(t.covariate) == {"class", "norm", "distance"}
    assert (t[t.covariate == "class"].groups == 10).all()  # the ten digits
    assert (t[t.covariate != "class"].groups == 5).all()
    assert set(t.verdict) <= {"supported", "contradicted", "inconclusive"}
    assert (t.p_holm >= t.p - 1e-12).all()
    assert result.data.errors.shape == (3, 200)
    assert len(result.classes) == 10 and all(c > 0 for c in result.class_cpe)
    s = chapter.summary(result)
    assert sum(s.counts.values()) == s.n_tests == 9 and set(s.counts) == {
        "n_supported",
        "n_contradicted",
        "n_inconclusive",
    }
    assert s.class_cpe_min <= 1.0 <= s.class_cpe_max  # the marginal is a mixture of classes


def test_outputs_render_and_write_the_scorecard_table(result: chapter.Result, tmp_path) -> None:
    fig = chapter.figure_means(result)
    assert len(fig.axes) == 3
    fig2 = chapter.figure_spread(result)
    assert fig2.axes[0].get_ylabel().startswith("spread")
    html = chapter.verdict_table(result).to_html()
    assert "one w per level" in html and "distance to the data" in html
    assert "CPE_c / CPE" in chapter.class_cpe_table(result).to_html()
    csv_path, _ = chapter.write_outputs(result, tmp_path)
    back = results_from_csv(csv_path.read_text())
    assert [r.verdict for r in back] == [r.verdict for r in result.results]


def test_the_result_round_trips_as_an_artifact(result: chapter.Result, tmp_path) -> None:
    path = art.save_artifact(
        chapter, result.params, result, wall_time_s=1.0, params_set="quick", directory=tmp_path
    )
    back = art.read_artifact(path).result()
    np.testing.assert_array_equal(back.data.errors, result.data.errors)
    assert back.results == result.results and back.class_cpe == result.class_cpe
    assert chapter.summary(back) == chapter.summary(result)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="parameter timesteps needs at least two"):
        chapter.Params(timesteps=[10])
    with pytest.raises(ValueError, match="parameter trajectory: unknown value 'uniform'"):
        chapter.Params(trajectory="uniform")
    with pytest.raises(ValueError, match="past the schedule's last timestep 999"):
        chapter.run(chapter.Params(timesteps=[10, 1000]))
    with pytest.raises(ValueError, match="does not hold the same held-out data"):
        chapter.run(chapter.Params(labels_testbed="fashion-cond", **SMALL))
