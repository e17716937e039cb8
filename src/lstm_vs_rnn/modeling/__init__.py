"""Layer 2, the networks: their definition, training, weights on disk, the MLflow model that
serves them and recursive multi-step rollout."""
