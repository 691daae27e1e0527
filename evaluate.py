"""Report on a finished sweep: the paper's Table 2 with CIs, subgroups, ROC/PR, DeLong tests.

python evaluate.py                                   # experiment ecg-mi-synthetic
python evaluate.py experiment_name=ecg-mi-ptbxl-cpu_fast paper=true
"""

import hydra
from omegaconf import DictConfig

from ecg_mi.cli import install_signal_handlers, refuse_renamed_arguments, report_errors


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from ecg_mi.evaluate.main import run

    with report_errors():
        run(cfg)


if __name__ == "__main__":
    install_signal_handlers()  # SIGTERM/SIGINT: run KILLED, exit 143/130
    # `model=` names a training config group (conf/model/): the model to score or register has its own key.
    refuse_renamed_arguments({"model=": "model_uri=<MLflow model URI> (external=true) or model_name=<sweep model> "
                                        "(register=<name>)", "--paper": "paper=true"})
    main()
