"""The EventBridge rules of the cloud stack, for the local bus.

The same patterns as the template's rules: tuning jobs of this project that ended; only
the final (instrumented) training job, never the HPO trials; the serving endpoint's state.
"""

from __future__ import annotations

from local.bus import Rule
from local.events import ENDPOINT, TRAINING, TUNING

HANDLERS = "orchestration.handlers"


def default_rules(prefix: str, endpoint_name: str) -> list[Rule]:
    return [
        Rule(
            "tuning-job-state-change",
            {
                "source": ["aws.sagemaker"],
                "detail-type": [TUNING],
                "detail": {
                    "HyperParameterTuningJobStatus": ["Completed", "Failed", "Stopped"],
                    "Tags": {"project": [prefix]},
                },
            },
            f"{HANDLERS}:tuning_job_state_change",
        ),
        Rule(
            "training-job-state-change",
            {
                "source": ["aws.sagemaker"],
                "detail-type": [TRAINING],
                "detail": {
                    "TrainingJobStatus": ["Completed", "Failed", "Stopped"],
                    "Tags": {"project": [prefix], "stage": ["final"]},
                },
            },
            f"{HANDLERS}:training_job_state_change",
        ),
        Rule(
            "endpoint-state-change",
            {
                "source": ["aws.sagemaker"],
                "detail-type": [ENDPOINT],
                "detail": {"EndpointName": [endpoint_name]},
            },
            f"{HANDLERS}:endpoint_state_change",
        ),
    ]
