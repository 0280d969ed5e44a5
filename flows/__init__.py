"""Prefect flows: composition only. Each reads like the round it runs."""
