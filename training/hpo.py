"""HPO trial entry point (SageMaker script mode): train, report val_acc, keep the metrics.

Lean on purpose: metric lines and metrics.json, no TensorBoard, smdebug or model artifact
(the run's final job retrains with the best trial's hyperparameters; ``--save_model true``
keeps a trial's model anyway). Run ``python hpo.py --help`` for every option.
"""

import sys

from trainlib.cli import main

if __name__ == "__main__":
    sys.exit(
        main(
            sys.argv[1:],
            prog="hpo.py",
            description="One hyperparameter-tuning trial: ResNet-34 on CIFAR-100, objective "
            "val_acc. Writes metric lines and <output-data-dir>/metrics.json; no model unless "
            "--save_model true.",
            instrumented=False,
        )
    )
