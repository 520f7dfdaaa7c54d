"""The report's files, one module per format."""
