"""ecg-mi's Optuna sweeper for Hydra (``hydra/sweeper=ecg_mi_optuna``); see :mod:`.optuna_sweeper`."""
