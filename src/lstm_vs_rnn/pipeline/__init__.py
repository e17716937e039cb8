"""The work of each DVC stage, one module per stage: `run(params, paths, ...) -> StageResult`.

The top layer: it reads the files the earlier stages wrote, calls the layers below (data ->
modeling -> evaluation -> reporting), writes the stage's outputs and returns what the stage's
MLflow run logs. It never imports tracking: `stages/<stage>.py` opens the run and logs the
result, so an edit to the tracking code re-runs no stage.
"""
