"""The training library behind hpo.py and train_model.py (one code path, two entry points).

Modules: ``config`` (CLI + SageMaker env contract), ``data`` (both channel layouts, the
validation split, batches in memory or streamed from files), ``distributed`` (the torchrun
contract, the process group, rank helpers and collectives), ``preprocess`` (the metadata
preprocess dict and the transforms built from it), ``model`` (ResNet-34 with a frozen trunk
and an MLP head), ``loop`` (train/evaluate, DistributedDataParallel), ``instrumentation``
(metric lines, TensorBoard, smdebug, plots), ``artifact`` (the model dir, written
atomically), ``champion`` (the model in service, scored on the same test images),
``mcnemar`` (the exact test of that comparison) and ``cli`` (``main``).
"""
