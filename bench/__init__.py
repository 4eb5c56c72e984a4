"""On-demand benchmarks (issue 8): `python -m bench` runs them all and writes bench/RESULTS.md."""
