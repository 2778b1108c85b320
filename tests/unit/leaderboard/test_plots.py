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
