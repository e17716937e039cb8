"""Layer 1, the series: sources (sine, lagged, CSV), min-max scaling and sliding windows."""
