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
