"""Talking to SageMaker: request bodies, names and tags, the state-change events it sends,
the best trial, deployment and endpoint auto-scaling."""
