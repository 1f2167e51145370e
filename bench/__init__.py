"""Codec benchmarks of fastfig against matplotlib's WebAgg path, kept out of the default
test run. ``python -m bench`` runs them and prints the comparison (see bench/README.md)."""
