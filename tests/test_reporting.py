"""The report writers: one figure saver, one CSV writer, one Markdown table writer."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from ecg_mi.utils.reporting import FIGURE_DPI, markdown_table, save_figure, with_ci, write_csv  # noqa: E402


def test_save_figure_writes_a_png_at_the_fixed_dpi_and_closes_the_figure(tmp_path):
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1])
    path = save_figure(fig, tmp_path / "figures" / "line.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and round(image.info["dpi"][0]) == FIGURE_DPI
    assert not plt.fignum_exists(fig.number)
    assert [p.name for p in path.parent.iterdir()] == ["line.png"]  # no temporary left


def test_markdown_table_writes_the_header_a_rule_and_one_line_per_row():
    frame = pd.DataFrame([["a", 1, "0.500"], ["b", 22, ""]], columns=["model", "folds", "AUC"])
    assert markdown_table(frame) == "| model | folds | AUC |\n|---|---|---|\n| a | 1 | 0.500 |\n| b | 22 |  |\n"


def test_markdown_table_of_no_rows_is_its_header():
    assert markdown_table(pd.DataFrame([], columns=["a", "b"])) == "| a | b |\n|---|---|\n"


def test_with_ci_rounds_the_estimate_and_its_bounds_alike():
    assert with_ci(0.91234, 0.8999, 0.93) == "0.912 [0.900, 0.930]"
    assert with_ci(1.234, 1.0, 1.5, digits=2) == "1.23 [1.00, 1.50]"


def test_write_csv_keeps_six_significant_digits_without_an_index(tmp_path):
    path = write_csv(pd.DataFrame({"x": [1 / 3], "name": ["a"]}), tmp_path / "t.csv")
    assert path.read_bytes() == b"x,name\n0.333333,a\n"
