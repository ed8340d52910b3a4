"""Helpers the examples' matplotlib scripts share: reading a trainer's CSV, the command line
and axes of the per-epoch curves, and saving a compact PNG. The scripts import it with
`sys.path.insert(0, <examples>/common)` after choosing matplotlib's backend."""
import argparse
import csv
import io
import math
import statistics
import sys

from matplotlib.ticker import MaxNLocator
from PIL import Image  # matplotlib's own dependency, so always there with it


def read_csv_rows(path, required):
    """Returns the rows of the CSV at `path` as dicts; raises ValueError naming the file
    when a `required` column is missing or there is no data row."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in required if name not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{path}: no data rows")
    return rows


def mean_std(values):
    """The mean and the sample standard deviation of `values` (0 for one value, NaN for none)."""
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def parity_parser(doc, torchloss_help):
    """The command line both parity scripts share: TORCHLOSS_DIR PYTORCH_DIR --output-dir DIR
    [--check-trajectories RTOL] [--no-plot]."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("torchloss_dir", help=torchloss_help)
    parser.add_argument("pytorch_dir", help="output of reference.py")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--check-trajectories", type=float, metavar="RTOL",
                        help="fail unless every epoch's training loss agrees within RTOL")
    parser.add_argument("--no-plot", action="store_true")
    return parser


def parity_columns(keys):
    """The parity.csv columns of each key: both sides' means and standard deviations, the difference."""
    return [f"{key}_{suffix}" for key in keys
            for suffix in ("torchloss", "torchloss_std", "pytorch", "pytorch_std", "difference")]


def write_parity_csv(path, columns, rows):
    """Writes `rows` (dicts) as CSV: the "label" column quoted, "within_target" as 0/1."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(",".join(columns) + "\n")
        for row in rows:
            handle.write(",".join(f'"{row[c]}"' if c == "label" else str(int(row[c]) if c == "within_target"
                                                                          else row[c]) for c in columns) + "\n")


def side_cells(row, key, digits=2):
    """The torchloss and PyTorch cells of `key` in a parity row: "mean ± std" over several
    seeds, the mean alone for one."""
    def cell(side):
        mean, std = row[f"{key}_{side}"], row[f"{key}_{side}_std"]
        return f"{mean:.{digits}f}" if row["seeds"] < 2 else f"{mean:.{digits}f} ± {std:.{digits}f}"
    return [cell("torchloss"), cell("pytorch")]


def write_markdown_table(path, header, alignments, rows):
    """Writes a markdown table (`header` and `alignments` cells, then a list of cells per row)
    to `path` and returns its text."""
    lines = ["| " + " | ".join(cells) + " |" for cells in [header, alignments] + rows]
    text = "\n".join(lines) + "\n"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return text


def read_columns(path, columns):
    """Returns {column: [float, ...]} for the `columns` of the CSV at `path` (errors as read_csv_rows)."""
    rows = read_csv_rows(path, columns)
    return {name: [float(row[name]) for row in rows] for name in columns}


def style_epoch_axes(axes_list, **legend_options):
    """Gives each of `axes_list` (curves against the epoch) a light grid, a legend and whole-number ticks."""
    for axes in axes_list:
        axes.grid(alpha=0.3)
        axes.legend(**legend_options)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def metrics_plot_main(script, description, read, plot):
    """The command line of a metrics.csv plotter: METRICS_CSV OUTPUT_PNG [--title TITLE]. Calls
    plot(read(METRICS_CSV), OUTPUT_PNG, TITLE); when reading fails (OSError, ValueError) exits
    with the one line "`script`: error: <reason>"."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("metrics_csv")
    parser.add_argument("output_png")
    parser.add_argument("--title", default="")
    arguments = parser.parse_args()
    try:
        metrics = read(arguments.metrics_csv)
    except (OSError, ValueError) as error:
        sys.exit(f"{script}: error: {error}")
    plot(metrics, arguments.output_png, arguments.title)


def save_png(figure, path, dpi=100):
    """Saves `figure` as a PNG with a 256-colour palette: a third of the size of matplotlib's
    RGBA output for scatter plots, with no visible difference, so the results stay small
    enough to commit."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=256).save(path, format="PNG", optimize=True)


def check_same_curves(ours, theirs, keys, rtol, program):
    """Compares the train_loss of two trainers' metrics rows (dicts) matched by the `keys`
    columns; prints the largest relative difference and exits 1 when the rows differ or that
    difference exceeds rtol (the same seed gives both the same weights and batches)."""
    ours = {tuple(row[k] for k in keys): float(row["train_loss"]) for row in ours}
    theirs = {tuple(row[k] for k in keys): float(row["train_loss"]) for row in theirs}
    if set(ours) != set(theirs):
        sys.exit(f"{program}: error: the runs differ: only torchloss {sorted(set(ours) - set(theirs))}, "
                 f"only PyTorch {sorted(set(theirs) - set(ours))}")
    def relative(key):
        return abs(ours[key] - theirs[key]) / max(abs(theirs[key]), 1e-12)
    worst = max(ours, key=relative)
    name = "/".join(worst)
    print(f"training curves: {len(ours)} epochs compared, largest relative difference {relative(worst):.2e} "
          f"({name}: torchloss {ours[worst]:.6g}, PyTorch {theirs[worst]:.6g})")
    if relative(worst) > rtol:
        sys.exit(f"{program}: error: the training curves part: {name} train_loss {ours[worst]:.6g} (torchloss) "
                 f"vs {theirs[worst]:.6g} (PyTorch), relative difference {relative(worst):.2e} > {rtol:g}")
