"""The names of the tags every pipeline run carries: what the runs table filters and groups by.

MLflow's own tag names are spelled out, so that importing this module does not import MLflow.
"""

CONFIG_TAG = "pipeline.config_hash"

CODE_VERSION_TAG = "pipeline.code_version"

ROLE_TAG = "pipeline.role"

STAGE_TAG = "dvc.stage"

EXPERIMENT_TAG = "dvc.exp_name"

COMMIT_TAG = "mlflow.source.git.commit"

DIRTY_TAG = "git.dirty"

MODEL_HASH_TAG = "model.sha256"

REPEAT_TAG = "repeat"

# The rolling-origin fold (evaluate.folds) a tune or train stage's runs belong to.
FOLD_TAG = "fold"

# Each model's headline on its configuration's parent run: the mean test RMSE over repeats.
HEADLINE_METRIC = "test_rmse.mean"

WEIGHTS_FROM_TAG = "weights_trained_under"

SEED_TAG = "seed"

USER_TAG = "mlflow.user"

MERGED_TAG = "pipeline.merged_into"

# mlflow.utils.mlflow_tags, spelled out so that importing this module does not import MLflow.
MLFLOW_PARENT_RUN_ID = "mlflow.parentRunId"

MLFLOW_RUN_NAME = "mlflow.runName"

MLFLOW_SOURCE_NAME = "mlflow.source.name"
