"""Speed measurements: kernel-level attention benchmarks and the Lightning-harness overhead."""
