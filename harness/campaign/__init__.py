"""The fuzz campaign: execute workloads, run iterations, bundle divergences; replay, minimize, gate and the pytest plugin."""
