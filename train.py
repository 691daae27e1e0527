"""Train one model on one fold; Hydra composes the config (see conf/train.yaml)."""

import hydra
from omegaconf import DictConfig

from ecg_mi.cli import install_signal_handlers, report_errors
from ecg_mi.console import quiet


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Returns the validation metric ``optimized_metric`` (never a test metric) to Hydra, so
    an optimising sweeper tunes on validation; None in an extra DDP process."""
    quiet(bool(cfg.get("verbose")))  # before the libraries it quietens are imported
    from ecg_mi.train import run

    with report_errors():
        return run(cfg).get(cfg.optimized_metric)


if __name__ == "__main__":
    install_signal_handlers()  # SIGTERM/SIGINT: run KILLED, exit 143/130
    main()
