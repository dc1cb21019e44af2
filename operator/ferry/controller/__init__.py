"""The operator: kopf handlers that reconcile the four kinds and the Jobs they start."""
