"""Jobs that only process tests use: cooperative stops and frozen processes."""
