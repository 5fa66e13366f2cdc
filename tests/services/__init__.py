"""Local stand-ins for external services (an S3-compatible server, ...) as pytest fixtures."""
