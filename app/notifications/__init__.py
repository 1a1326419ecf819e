"""Emails to customers: usage thresholds, expiring credits, trial ending, payments (issue 8)."""
