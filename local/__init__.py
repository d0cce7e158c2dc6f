"""The embedded default: the whole system on one machine, no AWS account, no Docker.

The same FastAPI app and orchestration handlers run against local stand-ins that are
swapped in as clients (``retraining.deps.set_deps``): a local SageMaker behind real
botocore clients, a folder in place of S3, an SQLite run store and a local event bus.
"""
