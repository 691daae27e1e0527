"""Evaluate finished sweeps (the paper's Table 2, subgroups, ROC, Grad-CAM).

Not implemented yet: this arrives with the evaluation issue. Until then, compare runs in
the MLflow UI (``make ui``) or read each run's ``predictions.csv`` artifact.
"""

import sys

if __name__ == "__main__":
    print(
        "evaluate.py: not implemented yet (see the evaluation issue); use `make ui` to compare runs.",
        file=sys.stderr,
    )
    sys.exit(1)
