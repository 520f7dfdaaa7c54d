"""Benchmarks, outside the library packages (as Liger-Kernel keeps them): `hcld-grid bench kernels`
runs benchmarks.kernel_bench."""
