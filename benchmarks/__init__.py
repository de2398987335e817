"""Performance benchmarks (`make bench`), each measured against a same-run baseline."""
