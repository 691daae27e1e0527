"""Choose on validation: every model and ensemble of a sweep scored on the folds' validation parts.

The figure ranks the validation records as the model's packaged form would, without a map
fitted on the labels it is scored against, from the runs' ``val_predictions.csv``:

* a single model: its raw P(MI). Its calibration is strictly increasing (ecg_mi.calibration),
  so the packaged model orders records exactly as the raw one: the raw AUC *is* the calibrated
  one, with no label seen. (The file's calibrated column is cross-fitted — each record mapped by
  a calibrator fitted on the part's other patients — so its records come from different maps and
  their order is blurred: Extra Trees in ``make best`` 0.932 raw, 0.919 so scored.)
* an ensemble: the mean of its members' cross-fitted calibrated P(MI) (as on the test folds,
  :mod:`ecg_mi.evaluate.ensembles`): the members' maps set how they mix, so no map may have seen
  the records it scores. The blur of cross-fitting stays in this figure, averaged over members.

The mean over folds ranks them; the first is the model to ship, chosen without a test record.
Models whose runs predate ``val_predictions.csv`` get NaN and are never chosen. ``python
evaluate.py register=<name> model_name=chosen 'ensembles=[a+b, a+b+c]'`` registers the first among the
sweep's models and those ensembles.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ecg_mi import metrics
from ecg_mi.errors import DataError
from ecg_mi.evaluate.runs import Sweep

log = logging.getLogger(__name__)

#: ``register=<name> model_name=chosen``: register the model :func:`chosen_model` picks.
CHOSEN = "chosen"


def validation_aucs(sweep: Sweep) -> pd.DataFrame:
    """One row per model of ``sweep.runs``: ``folds`` scored, ``val_auc_mean``/``val_auc_sd``
    over them, ranked best first (NaN last; ties keep the models' order)."""
    val = sweep.val_predictions
    rows = []
    for model in sweep.runs["model"].unique():
        mine = val[val["model"] == model] if not val.empty else val
        # ``prob``: a single model's raw P(MI); an ensemble's rows already hold the mean of its
        # members' calibrated P(MI) (ensembles._mean_of_members). See the module docstring.
        aucs = [metrics.auc(g["prob"].to_numpy(dtype=float), g["label"].to_numpy())
                for _, g in mine.groupby("fold")] if len(mine) else []  # fmt: skip
        rows.append({"model": model, "folds": len(aucs), "val_auc_mean": np.mean(aucs) if aucs else np.nan,
                     "val_auc_sd": np.std(aucs, ddof=1) if len(aucs) > 1 else np.nan})  # fmt: skip
    ranked = pd.DataFrame(rows).sort_values("val_auc_mean", ascending=False, na_position="last", kind="stable")
    return ranked.reset_index(drop=True)


def chosen_model(sweep: Sweep) -> str:
    """The complete model or ensemble with the best mean validation AUC — among the incomplete
    ones (a sweep collected with ``allow_incomplete``) when none is complete; DataError when
    none of them logged validation predictions."""
    ranked = validation_aucs(sweep)
    complete = ranked[~ranked["model"].isin(sweep.incomplete)].reset_index(drop=True)
    if complete.empty:
        log.warning("no model of the sweep has every fold: choosing among the incomplete ones %s",
                    sorted(sweep.incomplete))  # fmt: skip
    ranked = ranked if complete.empty else complete
    if ranked["val_auc_mean"].isna().all():
        raise DataError(f"no complete model of the sweep logged val_predictions.csv (runs older than that file): "
                        f"re-run them to choose on validation; models: {sorted(ranked['model'])}")  # fmt: skip
    return str(ranked.loc[0, "model"])


__all__ = ["CHOSEN", "chosen_model", "validation_aucs"]
