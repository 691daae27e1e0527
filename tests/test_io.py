"""Atomic file writing (ecg_mi.utils.io)."""

import numpy as np
import pandas as pd
import pytest

from ecg_mi.utils.io import write_probabilities_csv


def test_probabilities_are_written_to_the_last_digit(tmp_path):
    # A calibrated P(MI) differs from its neighbours on an isotonic plateau by ~1e-6 x the raw
    # difference: six significant digits would make these five records one tie.
    probs = 0.3 + 1e-12 * np.arange(5)
    write_probabilities_csv(pd.DataFrame({"record_id": list("abcde"), "prob": probs}), tmp_path / "p.csv")
    back = pd.read_csv(tmp_path / "p.csv", float_precision="round_trip")["prob"].to_numpy()
    np.testing.assert_array_equal(back, probs)


def test_a_failed_write_leaves_no_file(tmp_path):
    class Unwritable(pd.DataFrame):
        def to_csv(self, *args, **kwargs):
            super().to_csv(*args, **kwargs)
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_probabilities_csv(Unwritable({"prob": [0.5]}), tmp_path / "p.csv")
    assert list(tmp_path.iterdir()) == []
