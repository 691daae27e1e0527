"""Data: readers → Record → SignalStore cache → cohort/folds (the DataModule that serves them:
:mod:`ecg_mi.datamodule`)."""
