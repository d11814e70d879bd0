"""Background jobs and the worker loop."""
