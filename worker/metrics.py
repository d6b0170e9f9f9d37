"""Prometheus metrics (prometheus_client). One registry per process; under gunicorn set
PROMETHEUS_MULTIPROC_DIR so every worker process's counters are summed on /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DELIVERIES = Counter(
    "pmguard_deliveries_total",
    "Webhook deliveries by source, event and outcome",
    ["source", "event", "outcome"],
)
JOBS = Counter("pmguard_jobs_total", "Jobs run, by kind and result", ["kind", "result"])
JOB_SECONDS = Histogram(
    "pmguard_job_seconds", "Time to run one job", ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
TRACKER_ERRORS = Counter(
    "pmguard_tracker_errors_total", "Tracker API errors, by transience", ["transient"]
)
RATE_LIMIT_WAITS = Counter(
    "pmguard_rate_limit_wait_seconds_total",
    "Seconds jobs were told to wait by trackers' Retry-After / rate-limit reset",
)
FINDINGS = Counter("pmguard_findings_total", "Findings reported, by rule", ["rule"])
INTAKE_BATCH = Histogram(
    "pmguard_intake_batch_deliveries",
    "Deliveries committed together in one transaction by the webhook intake",
    buckets=(1, 2, 3, 4, 6, 8, 16, 32, 64),
)
