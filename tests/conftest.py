"""Shared test set-up. Each area keeps its own fixtures in tests/<tier>/<area>/conftest.py."""

import os

# Never let a test reach a real AWS account: dummy credentials and a fixed region.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SECURITY_TOKEN", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.pop("AWS_PROFILE", None)
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Cifar100Tests")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "cifar100-tests")
