"""Portico benchmark runner: origins, contenders, wrk, results."""
