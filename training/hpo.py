"""HPO trial entry point (SageMaker script mode): train, report val_acc, save the model.

Lean on purpose: metric lines, metrics.json and the artifact, no TensorBoard or smdebug.
Run ``python hpo.py --help`` for every option.
"""

import sys

from trainlib.cli import main

if __name__ == "__main__":
    sys.exit(
        main(
            sys.argv[1:],
            prog="hpo.py",
            description="One hyperparameter-tuning trial: ResNet-34 on CIFAR-100, objective val_acc.",
            instrumented=False,
        )
    )
