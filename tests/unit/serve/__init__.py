"""Tests of pipelines.serve."""
