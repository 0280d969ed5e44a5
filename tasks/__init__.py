"""Thin Prefect tasks: each wraps one library call and returns ids and figures (never models or
images). Retries only where a service is touched (Label Studio, MLflow)."""
