"""What a running node tells its operators: Prometheus metrics, health and readiness, JSON logs,
and (at the county and townships) the health of every node below from the reports they send up.

Nothing here decides anything about errands; it reads the store and counts what the sync driver did.
"""
