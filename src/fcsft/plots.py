"""The one chart shape fcsft draws (grouped bars, headless matplotlib), written as PNG files."""

from __future__ import annotations

import base64
from pathlib import Path

Bar = float | tuple[float, float, float]  # a height, or (height, 95% low, 95% high)


def bars(
    path: Path,
    title: str,
    series: dict[str, dict[str, Bar]],
    *,
    horizontal: bool = False,
    counts: bool = False,
    share: bool = False,
) -> Path:
    """Grouped bars: one colour per series, one group per label; whiskers where a bar carries
    an interval. `counts` puts integer ticks on the value axis, `share` fixes it to 0..1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    labels = list(dict.fromkeys(label for values in series.values() for label in values))
    if horizontal:
        size = (6.4, max(2.4, 0.35 * len(labels) + 1.2))
    else:
        size = (max(5.0, 0.9 * len(labels) + 2), 3.4)
    fig, ax = plt.subplots(figsize=size)
    width = 0.8 / max(1, len(series))
    for k, (name, values) in enumerate(series.items()):
        positions = [i + k * width for i in range(len(labels))]
        triples = [_triple(values.get(label, 0.0)) for label in labels]
        heights = [t[0] for t in triples]
        whiskers = None
        if any(isinstance(v, tuple) for v in values.values()):
            whiskers = [[t[0] - t[1] for t in triples], [t[2] - t[0] for t in triples]]
        if horizontal:
            ax.barh(positions, heights, height=width, label=name, xerr=whiskers, capsize=3)
        else:
            ax.bar(positions, heights, width=width, label=name, yerr=whiskers, capsize=3)
    ticks = [i + width * (len(series) - 1) / 2 for i in range(len(labels))]
    value_axis = ax.xaxis if horizontal else ax.yaxis
    if horizontal:
        ax.set_yticks(ticks, labels)
        ax.invert_yaxis()
    else:
        ax.set_xticks(ticks, labels)
        ax.tick_params(axis="x", labelrotation=20 if len(labels) > 4 else 0)
    if counts:
        value_axis.set_major_locator(MaxNLocator(integer=True))
    if share:
        (ax.set_xlim if horizontal else ax.set_ylim)(0, 1.05)
    if len(series) > 1:
        ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _triple(bar: Bar) -> tuple[float, float, float]:
    return bar if isinstance(bar, tuple) else (float(bar), float(bar), float(bar))


def inline_png(path: Path) -> str:
    """An <img> tag carrying the PNG itself, so an HTML report is one self-contained file."""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{path.stem}" src="data:image/png;base64,{data}">'
