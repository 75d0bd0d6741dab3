"""The "Settings of this run" block: every parameter a run used, collapsed under the page's
introduction, values shown as the reader would type them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from vrg_analysis.report import collapsed, settings_block, settings_html
from vrg_analysis.report.settings import MAX_VALUE_CHARS, setting_text
from vrg_analysis.studies import guidance


@dataclass(frozen=True)
class Params:
    model: str = "digits"
    steps: tuple[int, ...] = (5, 10)
    n_samples: int | None = None
    gamma: float = 0.01
    quick: bool = True


def test_every_field_is_a_row_of_a_collapsed_block() -> None:
    text = settings_html(Params())
    assert text.startswith('<details class="vrg-settings"><summary>Settings of this run</summary>')
    assert text.endswith("</details>")
    assert text.count("<tr>") == 5
    assert "<td><code>steps</code></td><td>[5, 10]</td>" in text
    assert "<td><code>n_samples</code></td><td>default</td>" in text
    assert "<td><code>gamma</code></td><td>0.01</td>" in text
    assert "<td><code>quick</code></td><td>True</td>" in text
    assert settings_block(Params()).data == text


def test_a_chapter_params_after_its_checks() -> None:
    """The block shows what the run used: the checked, resolved values."""
    text = settings_html(guidance.Params(steps="[10, 5]"))
    assert "<td><code>steps</code></td><td>[5, 10]</td>" in text
    assert "<td><code>guidance_scales</code></td><td>[2.0]</td>" in text


def test_several_objects_are_grouped_and_mappings_accepted() -> None:
    text = settings_html(Params(), {"verdict_dir": "verdicts"}, title="Settings")
    assert "<summary>Settings</summary>" in text
    assert '<th colspan="2">test_report_settings.Params</th>' in text
    assert '<th colspan="2">settings</th>' in text
    assert "<td><code>verdict_dir</code></td><td>verdicts</td>" in text


def test_paths_of_the_build_machine_are_not_shown(tmp_path, monkeypatch) -> None:
    from vrg_analysis.report.settings import PROJECT_ROOT

    assert setting_text(str(PROJECT_ROOT / "benchmarks" / "results")) == "benchmarks/results"
    assert setting_text(PROJECT_ROOT / "data") == "data"
    monkeypatch.chdir(tmp_path)
    assert setting_text(str(tmp_path / "out" / "x.npz")) == "out/x.npz"
    assert setting_text(str(tmp_path)) == "."
    assert setting_text("/elsewhere/model") == "/elsewhere/model"  # a user's own folder
    assert setting_text("relative/path") == "relative/path"


def test_the_run_shown_and_this_builds_run_are_labelled_and_shown_once_when_equal() -> None:
    labels = ("the run shown on this page", "this build's run")
    both = settings_html(Params(n_samples=500), Params(), labels=labels)
    assert '<th colspan="2">the run shown on this page</th>' in both
    assert "<th colspan=\"2\">this build's run</th>" in both.replace("&#x27;", "'")
    assert both.count("<td><code>n_samples</code></td>") == 2
    once = settings_html(Params(), Params(), labels=labels)
    assert once.count("<td><code>n_samples</code></td>") == 1 and "<th" not in once
    with pytest.raises(ValueError, match="2 labels for 1"):
        settings_html(Params(), labels=labels)


def test_values_are_escaped_and_cut() -> None:
    assert setting_text([0.5, None, "a"]) == "[0.5, default, a]"
    assert setting_text(float("nan")) == "nan"
    long = setting_text(list(range(100)))
    assert len(long) == MAX_VALUE_CHARS and long.endswith("…")
    text = settings_html({"path": "<script>x</script>"})
    assert "<script>" not in text and "&lt;script&gt;" in text


@pytest.mark.parametrize("bad", [(), (3,), ("text",)])
def test_bad_input_is_refused(bad: tuple) -> None:
    with pytest.raises((TypeError, ValueError), match="settings"):
        settings_html(*bad)


def test_detail_is_collapsed_under_its_title() -> None:
    block = collapsed("<table></table>", "Every finding in full").data
    assert block.startswith('<details class="vrg-details"><summary>Every finding in full')
    assert block.endswith("<table></table></details>")
    with pytest.raises(ValueError, match="title"):
        collapsed("<p>x</p>", " ")


def test_a_figure_is_glued_with_its_data_beside_it(tmp_path) -> None:
    import matplotlib.pyplot as plt
    import pandas as pd

    from vrg_analysis.report import glue_figure

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    frame = pd.DataFrame({"K": [5, 10], "difference": [-0.5, 0.25]})
    path = glue_figure("fig_x", fig, data=frame, data_dir=tmp_path / "figures" / "chapter")
    assert path == tmp_path / "figures" / "chapter" / "fig_x.csv"
    assert pd.read_csv(path).equals(frame)
    assert not plt.fignum_exists(fig.number)  # closed once glued
    fig2, _ = plt.subplots()
    assert glue_figure("fig_y", fig2) is None
    fig3, _ = plt.subplots()
    with pytest.raises(TypeError, match="fig_z.*DataFrame"):
        glue_figure("fig_z", fig3, data=[1, 2])  # type: ignore[arg-type]
