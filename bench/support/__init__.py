"""Helpers the benchmarks share with the tests: a loopback Prefect server, the fan-out world, a gateway simulator."""
