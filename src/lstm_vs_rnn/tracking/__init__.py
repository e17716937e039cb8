"""Tracking, beside the layers: what the stages log to MLflow (configuration identity, the
store, parent runs, stage and repeat runs, logged models, liveness). Used by the
stages and commands, never by the layers."""
