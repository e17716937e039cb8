"""Layer 3, evaluation: test metrics, baselines, paired statistics over repeats, multi-step
error by horizon and gradient flow."""
