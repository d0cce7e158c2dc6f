"""Instrumented training entry point (SageMaker script mode) for the final model.

Same training as hpo.py, plus TensorBoard scalars, PNG curves and, when a hook config
exists, smdebug tensors. Run ``python train_model.py --help`` for every option.
"""

import sys

from trainlib.cli import main

if __name__ == "__main__":
    sys.exit(
        main(
            sys.argv[1:],
            prog="train_model.py",
            description="Instrumented training of ResNet-34 on CIFAR-100 with the chosen hyperparameters.",
            instrumented=True,
        )
    )
