"""Status lines of the sender and receiver."""

from __future__ import annotations


def format_report(report: dict[str, object]) -> str:
    """A report dict as one ``key=value`` log line."""
    return " ".join(f"{key}={value}" for key, value in report.items())
