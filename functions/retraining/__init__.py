"""Retraining domain: run records, the run store, SageMaker request builders and the
state machine that the orchestration handlers and the API share. Plain functions over
boto3-shaped clients; no module-level AWS calls."""
