"""STELLA's benchmarks: `make bench` prints one table of figures and writes them as JSON."""
