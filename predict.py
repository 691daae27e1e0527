"""Score ECG export files with a packaged model: one CSV row per record (see conf/predict.yaml).

python predict.py model_uri=models:/ecg-mi@champion input=/data/exports output=predictions.csv
"""

import hydra
from omegaconf import DictConfig

from ecg_mi.cli import install_signal_handlers, refuse_renamed_arguments, report_errors


@hydra.main(config_path="conf", config_name="predict", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from ecg_mi.predict import run

    with report_errors():
        run(cfg)


if __name__ == "__main__":
    install_signal_handlers()  # SIGTERM/SIGINT: exit 143/130, no half-written CSV
    # `model=` names a training config group (conf/model/); the model to score is model_uri=.
    refuse_renamed_arguments({"model=": "model_uri=<MLflow model URI>"})
    main()
