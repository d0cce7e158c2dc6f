"""What a caller may change for one retraining run (``POST /jobs/tune`` body, schedule input).

Validated once here, so the API and the schedule refuse the same things with the same words.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class InstanceTypeNotAllowed(ValueError):
    """The requested training instance type is not in ALLOWED_INSTANCE_TYPES."""


class IntRange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: int = Field(ge=1, le=200)
    max: int = Field(ge=1, le=200)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class FloatRange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: float = Field(gt=0.0, le=1.0)
    max: float = Field(gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self


class TuneOverrides(BaseModel):
    """Every field is optional; an absent one takes the stack's setting."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "max_jobs": 4,
                    "max_parallel_jobs": 2,
                    "epochs": {"min": 2, "max": 6},
                    "learning_rate": {"min": 0.0001, "max": 0.05},
                    "batch_sizes": [64, 128],
                    "instance_type": "ml.g5.xlarge",
                }
            ]
        },
    )

    max_jobs: int | None = Field(None, ge=1, le=100, description="Tuning trials in all")
    max_parallel_jobs: int | None = Field(None, ge=1, le=10, description="Trials at once")
    epochs: IntRange | None = Field(None, description="Integer range searched for `epochs`")
    learning_rate: FloatRange | None = Field(
        None, description="Range searched (log scale) for `learning_rate`"
    )
    batch_sizes: list[int] | None = Field(
        None, min_length=1, max_length=8, description="Categorical values for `batch_size`"
    )
    instance_type: str | None = Field(
        None, description="Training instance type; must be in ALLOWED_INSTANCE_TYPES"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.batch_sizes is not None:
            bad = [b for b in self.batch_sizes if not 1 <= b <= 1024]
            if bad:
                raise ValueError(f"batch_sizes must be between 1 and 1024, got {bad}")
        if (
            self.max_jobs is not None
            and self.max_parallel_jobs is not None
            and self.max_parallel_jobs > self.max_jobs
        ):
            raise ValueError("max_parallel_jobs must not exceed max_jobs")
        return self

    def check_allowed(self, allowed_instance_types: list[str]) -> None:
        """Raise InstanceTypeNotAllowed when the instance type is not one the stack allows."""
        if self.instance_type is not None and self.instance_type not in allowed_instance_types:
            raise InstanceTypeNotAllowed(
                f"instance_type {self.instance_type!r} is not allowed; "
                f"choose one of {', '.join(allowed_instance_types)}"
            )
