"""Train one model on one fold; Hydra composes the config (see conf/train.yaml)."""

import hydra
from omegaconf import DictConfig

from ecg_mi.cli import report_errors


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    from ecg_mi.train import run

    with report_errors():
        return run(cfg)["test_auc"]


if __name__ == "__main__":
    main()
