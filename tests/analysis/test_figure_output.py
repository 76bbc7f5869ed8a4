"""The figure path (own Agg canvas, layout check without rasterising) writes the same bytes as plain matplotlib (PNG, and PDF with a fixed SOURCE_DATE_EPOCH)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from cgeval.analysis import figures
from cgeval.analysis.figures import RC, clipped_texts, plot_letter_bias

from .conftest import make_predictions


def _plain(df, title, stem):
    """The letter-bias figure drawn and saved the way figures.py did before: pyplot, full draw, savefig."""
    counts = figures.letter_counts(df)
    n = len(df)
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(figures.ONE_COLUMN, 1.9), layout="constrained")
        x = range(len(counts))
        ax.bar([i - 0.2 for i in x], counts["gold"] / n * 100, width=0.4, color=figures.OKABE_ITO[1], label="gold")
        ax.bar([i + 0.2 for i in x], counts["predicted"] / n * 100, width=0.4, color=figures.OKABE_ITO[0],
               label="predicted")
        ax.set_xticks(list(x), counts["letter"])
        ax.set_ylabel("Share of answers (%)")
        ax.legend()
        ax.set_title(title)
        fig.canvas.draw()
        for ext in ("png", "pdf"):
            fig.savefig(stem.with_name(f"{stem.name}.{ext}"), dpi=300)
        plt.close(fig)


def test_figures_are_byte_identical_to_plain_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")  # PDFs carry a creation date (and their fonts a stamp) otherwise
    df = make_predictions()
    _plain(df, "Letter bias", tmp_path / "plain")
    plot_letter_bias(df, tmp_path / "fast", title="Letter bias")
    for ext in ("png", "pdf"):
        assert (tmp_path / f"fast.{ext}").read_bytes() == (tmp_path / f"plain.{ext}").read_bytes(), ext


@pytest.mark.parametrize("label, clipped", [("short", False), ("a label far too long for one column " * 4, True)])
def test_clipped_texts_agrees_with_a_full_draw(label, clipped):
    fig, ax = plt.subplots(figsize=(3.3, 2), layout="constrained")
    ax.set_xlabel(label)
    got = clipped_texts(fig)
    fig.canvas.draw()  # the check used to rasterise the figure first; the extents must not differ
    tight = fig.get_tightbbox(fig.canvas.get_renderer())
    assert bool(got) == clipped
    assert got == clipped_texts(fig)
    assert (tight.x0 < -0.01) == any("left" in g for g in got)
    plt.close(fig)


def test_grouped_bars_with_long_run_labels_fit_their_canvas(tmp_path, recwarn):
    """Six runs named after their folders: the legend wraps into rows instead of running off both edges, and
    constrained layout is applied (it gives up, with a warning, when the decorations leave the axes no room)."""
    import pandas as pd

    runs = [f"{m}_holdout_ct_lung{s}" for m in ("mock", "prior", "random") for s in ("", "_covid")]
    rows = [{"target": t, "run": r, "n": 10, "accuracy": 0.5, "ci_low": 0.2, "ci_high": 0.8, "note": ""}
            for t in ("03 CT-Lung-COVID", "04 CT-Lung-Cancer") for r in runs]
    paths = figures.plot_grouped_bars(pd.DataFrame(rows), tmp_path / "bars", title="Accuracy on target compositions")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 0 for p in paths)
    messages = [str(w.message) for w in recwarn]
    assert not any("cut off" in m or "collapsed" in m for m in messages), messages


def _run_table(p_correct=0.5, seed=0):
    from cgeval.analysis.metrics import bootstrap_summary, metrics_table, prepare

    df = prepare(make_predictions(p_correct=p_correct, seed=seed))
    return metrics_table(df, None), bootstrap_summary(df, n_boot=50, seed=0)


@pytest.mark.parametrize("title", ["holdout_ct_lung_covid / random / generate",
                                   "table3_modality_xray_bones_diseases_from_fracture_breast / huatuogpt_vision_7b / "
                                   "likelihood"])
def test_forest_plot_titles_fit_the_column(tmp_path, title):
    """A run label as long as the experiment names make it wraps inside the 3.3 in canvas instead of being cut."""
    import warnings

    table, boot = _run_table()
    with warnings.catch_warnings():
        warnings.simplefilter("error", figures.FigureLayoutWarning)
        figures.plot_forest(table, boot, tmp_path / "forest", title=title)
        figures.plot_composition_accuracy(table, tmp_path / "bars", title=title)


def test_the_composition_legend_covers_no_bar_or_interval(tmp_path, monkeypatch):
    """Bars near 100% with intervals reach every corner of the axes; the legend must lie clear of all of them."""
    from matplotlib.transforms import Bbox

    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, stem: drawn.append(fig) or [])
    table, _ = _run_table(p_correct=0.97, seed=3)
    figures.plot_composition_accuracy(table, tmp_path / "bars", title="holdout_ct_lung / mock / generate")
    [fig] = drawn
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    [ax] = fig.axes
    legends = fig.legends + ([ax.get_legend()] if ax.get_legend() else [])
    assert legends
    marks = [p.get_window_extent(renderer) for p in ax.patches]
    for collection in ax.collections:  # the intervals' segments and the chance markers
        for seg in getattr(collection, "get_segments", lambda: [])():
            marks.append(Bbox(ax.transData.transform(seg)))
        offsets = collection.get_offsets()
        if len(offsets):
            marks += [Bbox([xy, xy]) for xy in ax.transData.transform(offsets)]
    assert len(marks) > 3 * len(table[table["level"] == "composition"])
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert not [m for m in marks if box.overlaps(m)]
