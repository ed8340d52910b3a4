"""Helpers the examples' matplotlib scripts share: reading a trainer's CSV and saving a
compact PNG. The scripts import it with `sys.path.insert(0, <examples>/common)`."""
import csv
import io

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


def save_png(figure, path, dpi=100):
    """Saves `figure` as a PNG with a 256-colour palette: a third of the size of matplotlib's
    RGBA output for scatter plots, with no visible difference, so the results stay small
    enough to commit."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=256).save(path, format="PNG", optimize=True)
