"""A local SageMaker: the subset of the API the orchestration and the API call, answered
behind real botocore clients (see :mod:`local.sagemaker.wire`)."""
