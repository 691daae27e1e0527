"""The docs stay true to the code: the model table of docs/models.md is the registry's and
conf/model/'s, and the Layout of docs/development.md names every part of src/ecg_mi and no module
that is gone."""

import re
from itertools import takewhile

from conftest import REPO, compose_config
from ecg_mi.learners import architecture, representation_of
from ecg_mi.models import display_name, get_model_class
from ecg_mi.utils.reporting import markdown_table

MODELS_PAGE = REPO / "docs" / "models.md"
LAYOUT_PAGE = REPO / "docs" / "development.md"
PACKAGE = REPO / "src" / "ecg_mi"


def model_table() -> str:
    """The model table as the registry and conf/model/ give it today."""
    import pandas as pd

    rows = []
    for name in sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml")):
        cfg = compose_config("train", f"model={name}")
        built = architecture(cfg.model)
        rows.append([f"`{name}`", display_name(built), get_model_class(built).family, f"`{built}`",
                     f"`{representation_of(cfg).name}`"])  # fmt: skip
    return markdown_table(pd.DataFrame(rows, columns=["`model=`", "name", "family", "architecture", "reads"]))


def between(text: str, begin: str, end: str) -> str:
    return text.split(begin, 1)[1].split(end, 1)[0]


def layout_of_src() -> str:
    """The lines of the Layout section's src/ecg_mi/ block (indented under it)."""
    page = LAYOUT_PAGE.read_text(encoding="utf-8")
    block = between(between(page, "\n## Layout\n", "\n## "), "\nsrc/ecg_mi/\n", "\n```")
    return "\n".join(takewhile(lambda line: line.startswith("  "), block.splitlines()))


def parts() -> list[str]:
    """Every subpackage (``data/``) and top-level module (``train.py``) of src/ecg_mi."""
    found = [p.name + "/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()]
    return sorted(found + [p.name for p in PACKAGE.glob("*.py") if p.stem != "__init__"])


def test_the_model_table_is_the_registrys():
    expected = model_table()
    shown = between(MODELS_PAGE.read_text(encoding="utf-8"), "<!-- models: begin -->\n", "<!-- models: end -->")
    assert shown == expected, f"regenerate the model table of {MODELS_PAGE}:\n{expected}"


def test_the_layout_names_every_subpackage_and_top_level_module():
    layout = layout_of_src()
    missing = [part for part in parts() if not re.search(rf"^  {re.escape(part)}", layout, re.MULTILINE)]
    assert not missing, f"{LAYOUT_PAGE}'s Layout does not list {missing}"


def test_the_layout_names_no_module_that_is_gone():
    existing = {p.name for p in PACKAGE.rglob("*.py")} | {p.name + "/" for p in PACKAGE.rglob("*") if p.is_dir()}
    named = set(re.findall(r"\b\w+\.py\b|\b\w+/(?!\w)", layout_of_src()))
    assert named and not named - existing, f"{LAYOUT_PAGE}'s Layout names {sorted(named - existing)}"
