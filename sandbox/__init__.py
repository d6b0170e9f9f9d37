"""A local GitHub-compatible API for the demo and the tests; never used in production."""
