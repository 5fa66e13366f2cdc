"""Integration tests of pipelines.serve."""
