"""Names shared by the runtime and the infrastructure (``infra/``), declared once.

Environment variable names, the CloudWatch metric namespace and metric names. This
module imports nothing, so the CDK app can import it without the runtime's
dependencies; a name changed here changes for the code that reads it and for the
stack that sets or graphs it.
"""

# --- environment variables (read only in mlsys.settings; set by infra/) ------------

ENV_PREFIX = "MLSYS_"
REGISTRY_URI = "MLSYS_REGISTRY_URI"
MODEL_NAME = "MLSYS_MODEL_NAME"
LOG_URI = "MLSYS_LOG_URI"
LOG_DELIVERY = "MLSYS_LOG_DELIVERY"
LOG_INPUTS = "MLSYS_LOG_INPUTS"
LOG_INPUTS_SAMPLE_RATE = "MLSYS_LOG_INPUTS_SAMPLE_RATE"
LOG_RETENTION_DAYS = "MLSYS_LOG_RETENTION_DAYS"
LOG_SHARDS = "MLSYS_LOG_SHARDS"
MODEL_REFRESH_SECONDS = "MLSYS_MODEL_REFRESH_SECONDS"
MAX_BATCH_RECORDS = "MLSYS_MAX_BATCH_RECORDS"
MAX_BODY_BYTES = "MLSYS_MAX_BODY_BYTES"
MAX_LOG_PAGE = "MLSYS_MAX_LOG_PAGE"
GIT_COMMIT = "MLSYS_GIT_COMMIT"
DATA = "MLSYS_DATA"
TARGET = "MLSYS_TARGET"
TASK = "MLSYS_TASK"
METRIC = "MLSYS_METRIC"
MIN_IMPROVEMENT = "MLSYS_MIN_IMPROVEMENT"
CONFIDENCE = "MLSYS_CONFIDENCE"
SEED = "MLSYS_SEED"
ALLOW_SCHEMA_CHANGE = "MLSYS_ALLOW_SCHEMA_CHANGE"
TIME_BUDGET_SECONDS = "MLSYS_TIME_BUDGET_SECONDS"
MIN_BASELINE_LIFT = "MLSYS_MIN_BASELINE_LIFT"
ROLLOUT = "MLSYS_ROLLOUT"
CANARY_FRACTION = "MLSYS_CANARY_FRACTION"
ROLLOUT_MIN_REQUESTS = "MLSYS_ROLLOUT_MIN_REQUESTS"
ROLLOUT_MIN_BAKE_SECONDS = "MLSYS_ROLLOUT_MIN_BAKE_SECONDS"
ROLLOUT_MAX_ERROR_RATE_INCREASE = "MLSYS_ROLLOUT_MAX_ERROR_RATE_INCREASE"
ROLLOUT_MAX_P99_RATIO = "MLSYS_ROLLOUT_MAX_P99_RATIO"
ROLLOUT_MAX_SHADOW_DEVIATION = "MLSYS_ROLLOUT_MAX_SHADOW_DEVIATION"
ROLLOUT_MAX_QUALITY_DROP = "MLSYS_ROLLOUT_MAX_QUALITY_DROP"
ROLLOUT_EVIDENCE = "MLSYS_ROLLOUT_EVIDENCE"
ALARM_TOPIC_ARN = "MLSYS_ALARM_TOPIC_ARN"
MAX_FIT_ROWS = "MLSYS_MAX_FIT_ROWS"

# Powertools reads these itself; infra sets them.
POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"

# --- CloudWatch metrics (the team's fixed decision) -----------------------------------

METRICS_NAMESPACE = "mlsys"
"""Namespace of the handlers' and the training job's metrics."""
INFERENCE_SERVICE = "inference"
TRAINING_SERVICE = "training"
LOG_INGEST_SERVICE = "log-ingest"
ROLLOUT_SERVICE = "rollout"

METRIC_COLD_START = "ColdStart"
METRIC_REQUESTS = "Requests"
METRIC_RECORDS = "Records"
METRIC_LATENCY = "Latency"
METRIC_PREDICTION_VALUE = "PredictionValue"
METRIC_ERRORS = "Errors"
METRIC_SHADOW_LATENCY = "ShadowLatency"
"""A shadow candidate's latency per run (by the candidate's ModelVersion)."""
METRIC_SHADOW_ERRORS = "ShadowErrors"
METRIC_SHADOW_RECORDS = "ShadowRecords"
METRIC_SHADOW_DEVIATION = "ShadowDeviation"
"""Deviation x records per shadow run: Sum / Sum(ShadowRecords) is the mean deviation."""
METRIC_SERVER_ERRORS = "ServerErrors"
"""5xx responses of one Lambda function version (the code canary's rollback alarm)."""
METRIC_TRAINING_RUNS = "TrainingRuns"
METRIC_GUARDRAIL_FAILURES = "GuardrailFailures"
METRIC_PROMOTIONS = "Promotions"
METRIC_TRAINING_DURATION = "TrainingDuration"
METRIC_CHALLENGER_SCORE = "ChallengerScore"
METRIC_CHAMPION_SCORE = "ChampionScore"
METRIC_PREDICTED_CLASS = "PredictedClass"
METRIC_ROLLOUT_STATE = "RolloutState"
"""0 none, 1 canary, 2 shadow (published by the rollout evaluator)."""
METRIC_ROLLOUT_CANDIDATE_REQUESTS = "RolloutCandidateRequests"
METRIC_ROLLOUT_CANDIDATE_ERRORS = "RolloutCandidateErrors"

DIMENSION_MODEL_VERSION = "ModelVersion"
DIMENSION_ERROR_CODE = "ErrorCode"
DIMENSION_FUNCTION_NAME = "FunctionName"
DIMENSION_FUNCTION_VERSION = "FunctionVersion"

# Model monitor (mlsys.monitoring.scheduled publishes, infra/model_monitor.py alarms on them).
MONITOR_SERVICE = "monitor"
METRIC_FEATURE_DRIFT = "FeatureDrift"
METRIC_PREDICTION_DRIFT = "PredictionDrift"
METRIC_LIVE_QUALITY = "LiveQuality"
DIMENSION_MODEL_NAME = "ModelName"
DIMENSION_FEATURE = "Feature"

# --- the model bucket's scoring drop (infra/scoring.py triggers on it) -------------------

SCORE_PREFIX = "score/"
"""Files uploaded under this prefix of the model bucket are scored by an AWS Batch job..."""
SCORES_PREFIX = "scores/"
"""...which writes ``scores/<key below score/>.parquet``."""
