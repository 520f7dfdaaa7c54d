"""hcld-grid: named grids, Ray Tune / local scheduling, the result store, reports and the CLI."""
