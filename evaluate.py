"""Report on a finished sweep: the paper's Table 2 with CIs, subgroups, ROC/PR, DeLong tests.

python evaluate.py                                   # experiment ecg-mi-synthetic
python evaluate.py experiment_name=ecg-mi-ptbxl-cpu_fast --paper
"""

import sys

import hydra
from omegaconf import DictConfig

from ecg_mi.cli import install_signal_handlers, report_errors

# `--paper` is the documented flag; Hydra itself only takes key=value overrides.
sys.argv = ["paper=true" if arg == "--paper" else arg for arg in sys.argv]
# `model=<URI>` (external=true) travels as `model_uri=`: conf/model/ is a config group.
sys.argv = ["model_uri=" + arg[6:] if arg.startswith("model=") else arg for arg in sys.argv]


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from ecg_mi.evaluate.main import run

    with report_errors():
        run(cfg)


if __name__ == "__main__":
    install_signal_handlers()  # SIGTERM/SIGINT: run KILLED, exit 143/130
    main()
