"""Data: readers → Record → SignalStore cache → cohort/folds → DataModules."""
