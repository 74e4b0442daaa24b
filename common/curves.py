"""Training curves from summary.csv rows: train loss, lr, top-1 (and EMA top-1) against epoch, one line per
run in each panel, the run named in the legend. ``figure`` builds the matplotlib Figure (a test reads its
lines' data back), ``save_curves`` writes it as PNG; matplotlib's Agg canvas, no pyplot: no display needed
and no global state in a training process."""
import csv
import os

from common.errors import UserError

SUMMARY, CURVES = "summary.csv", "curves.png"  # in a run's output_dir (common.run_record)
PANELS = (("train_loss", "train loss", ("train_loss",)),
          ("lr", "learning rate", ("lr",)),
          ("top1", "top-1", ("eval_top1", "ema_top1")))


def read_summary(path):
    """The rows of a summary.csv as dicts of floats (None where empty)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    try:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in row.items()} for row in rows]
    except (TypeError, ValueError):
        raise UserError(f"{path} is not a summary.csv of a training run (a value is not a number)") from None


def series(rows, column):
    """(epochs, values) of ``column`` where it has a value."""
    points = [(row["epoch"], row[column]) for row in rows if row.get(column) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def figure(runs):
    """A Figure of ``runs`` ({name: summary rows}) in three panels; a line is labelled with its run (and
    ``(ema)`` for the EMA's top-1)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(12, 3.6), layout="constrained")
    for ax, (_, title, columns) in zip(fig.subplots(1, len(PANELS)), PANELS):
        for name, rows in runs.items():
            for column in columns:
                xs, ys = series(rows, column)
                if xs:
                    ax.plot(xs, ys, marker="o", markersize=3, label=name + (" (ema)" if column == "ema_top1" else ""),
                            linestyle="--" if column == "ema_top1" else "-")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize="small")
    return fig


def save_curves(runs, path):
    """``figure(runs)`` as a PNG at ``path``, written to a temporary file first (a reader never sees half)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    fig = figure(runs)
    FigureCanvasAgg(fig)
    tmp = f"{path}.tmp{os.getpid()}.png"
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
    return fig
