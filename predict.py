"""Score ECG export files with a packaged model: one CSV row per record (see conf/predict.yaml).

python predict.py model=models:/ecg-mi@champion input=/data/exports output=predictions.csv
"""

import sys

import hydra
from omegaconf import DictConfig

from ecg_mi.cli import install_signal_handlers, report_errors

# `model=<URI>` is the documented spelling; conf/model/ being a config group, it travels as
# `model_uri=<URI>` (Hydra would take `model=` as choosing a training model config).
sys.argv = ["model_uri=" + arg[6:] if arg.startswith("model=") else arg for arg in sys.argv]


@hydra.main(config_path="conf", config_name="predict", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from ecg_mi.predict import run

    with report_errors():
        run(cfg)


if __name__ == "__main__":
    install_signal_handlers()  # SIGTERM/SIGINT: exit 143/130, no half-written CSV
    main()
