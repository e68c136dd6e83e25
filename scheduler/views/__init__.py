"""Read models for people: what `cronhost status` and the dashboard show, and its text forms.

    status.py  JobStatus: one row per job, from the store (or the config before a first run)
    report.py  JobReport: a job's numbers over a window (`cronhost report`, the trends)
    text.py    aligned tables and human times for the CLI and the dashboard
"""

from __future__ import annotations

from scheduler.views.status import RAN, JobStatus, job_statuses

__all__ = ["RAN", "JobStatus", "job_statuses"]
