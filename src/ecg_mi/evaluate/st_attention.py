"""ST-attention section of the report: the networks' Grad-CAM mass in ST segments, pooled
over test folds, MI vs non-MI (overall and per lead), from the runs' ``st_attention.csv``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ecg_mi.data.record import STANDARD_LEADS
from ecg_mi.evaluate.runs import Sweep, fold_tables
from ecg_mi.explain.st_segment import compare_groups
from ecg_mi.utils.reporting import markdown_table, with_ci, write_csv


def st_attention_section(sweep: Sweep, uri: str, out_dir: Path, seed: int = 0) -> dict[str, Path]:
    """``st_attention.csv``: per network and lead ("all" = Grad-CAM), the mean ST ratio of MI
    and non-MI test records with patient-bootstrap CIs and the Mann–Whitney p."""
    rows = []
    for model in sorted(sweep.runs["model"].unique()):
        parts = fold_tables(sweep, uri, model, "st_attention.csv")  # networks only
        if not parts:
            continue
        pooled = pd.concat(parts, ignore_index=True)
        for lead in ("all", *STANDARD_LEADS):
            column = "st_ratio" if lead == "all" else f"st_ratio_{lead}"
            if column in pooled:
                rows.append(
                    {
                        "model": model,
                        "lead": lead,
                        **compare_groups(pooled[column], pooled["label"], pooled["patient_id"], seed=seed),
                    }
                )
    if not rows:
        return {}
    return {"st_attention.csv": write_csv(pd.DataFrame(rows), out_dir / "st_attention.csv")}


def st_attention_markdown(path: Path) -> str:
    """The overall (Grad-CAM) rows as a Markdown table."""
    table = pd.read_csv(path)
    table = table[table["lead"] == "all"]
    rows = [[r.model, with_ci(r.st_ratio_mi, r.st_ratio_mi_low, r.st_ratio_mi_high, 2),
             with_ci(r.st_ratio_non_mi, r.st_ratio_non_mi_low, r.st_ratio_non_mi_high, 2),
             f"{r.st_ratio_p_mannwhitney:.3g}", f"{r.n_mi:.0f} / {r.n_non_mi:.0f}"] for r in table.itertuples()]  # fmt: skip
    columns = ["model", "ST ratio MI [95% CI]", "ST ratio non-MI [95% CI]", "Mann–Whitney p", "n MI / non-MI"]
    return markdown_table(pd.DataFrame(rows, columns=columns))
