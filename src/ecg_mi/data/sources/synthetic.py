"""The embedded synthetic data set as a source (see :mod:`ecg_mi.data.synthetic`)."""

from __future__ import annotations

import pandas as pd

from ecg_mi.data import synthetic
from ecg_mi.data.record import Record
from ecg_mi.errors import ConfigError
from ecg_mi.utils.io import sha256_text


class SyntheticSource:
    """``n_records`` seeded synthetic ECGs generated at 500 Hz (decimated on demand)."""

    #: The outcome ``label`` stands for (the model card's outcome definition).
    outcome = ("MI as simulated: an infarct territory with pathological Q waves, reduced R, ST deviation "
               "and T inversion (src/ecg_mi/data/synthetic.py); synthetic, not clinical")

    name = "synthetic"
    partial_rates: tuple[int, ...] = ()

    def __init__(self, n_records: int = 600, seed: int = 0) -> None:
        if n_records < 10:
            raise ConfigError(f"data.source.n_records={n_records}: need at least 10 records")
        self.n_records = int(n_records)
        self.seed = int(seed)
        self._index = synthetic.generate_index(self.n_records, self.seed)

    def index(self) -> pd.DataFrame:
        return self._index.copy()

    def native_rate(self, sample_rate: int) -> int:
        return int(synthetic.NATIVE_FS)

    def record_path(self, row: pd.Series, native_rate: int) -> None:
        return None

    def read(self, row: pd.Series, native_rate: int) -> Record:
        meta = {k: row[k] for k in ("patient_id", "age", "sex", "label")}
        return Record(
            str(row["record_id"]),
            synthetic.synthesize_record(row, native_rate),
            float(native_rate),
            meta,
        )

    def fingerprint(self) -> str:
        index_hash = sha256_text(self._index.to_csv(index=False))[:16]
        return (
            f"synthetic:v{synthetic.GENERATOR_VERSION}:n{self.n_records}:s{self.seed}:{index_hash}"
        )
