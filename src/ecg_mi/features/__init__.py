"""Clinical features: delineation (delineate.py), the 408 named features (extract.py),
their cache (cache.py), and the median beat (beats.py)."""

from ecg_mi.features.extract import (
    FEATURE_VERSION,
    FEATURES,
    feature_names,
    record_features,
    signal_features,
)

__all__ = ["FEATURES", "FEATURE_VERSION", "feature_names", "record_features", "signal_features"]
