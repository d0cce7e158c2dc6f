"""One router per resource: predict, jobs, health."""
