"""ListTags: the tags a training job, tuning job or endpoint was created with."""

from __future__ import annotations

from local.sagemaker.context import Document
from local.sagemaker.errors import validation
from local.sagemaker.state import ResourceTable

# Only these kinds keep their tags (CreateModel and CreateEndpointConfig drop them).
_ARN_KEYS = {
    "training": "TrainingJobArn",
    "tuning": "HyperParameterTuningJobArn",
    "endpoint": "EndpointArn",
}


class Tags:
    def __init__(self, table: ResourceTable) -> None:
        self.table = table

    def list_tags(self, params: Document) -> Document:
        resource_arn = params["ResourceArn"]
        for kind in _ARN_KEYS:
            for doc in self.table.all(kind):
                if resource_arn in (doc.get(key) for key in _ARN_KEYS.values()):
                    tags = doc.get("_Tags", {})
                    return {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        raise validation(f"Could not find resource {resource_arn}")
