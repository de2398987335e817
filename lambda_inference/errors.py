"""Request-level errors of the prediction API, each with a stable ``code``.

They extend :mod:`mlsys.errors`; :func:`lambda_inference.http.status_for` is the
one place that maps any of them to an HTTP status.
"""

from __future__ import annotations

from mlsys.errors import MlsysError, ValidationError


class MalformedJsonError(ValidationError):
    code = "malformed_json"


class DuplicateKeyError(ValidationError):
    """A JSON object names one member twice (JSON parsers disagree on which wins)."""

    code = "duplicate_key"


class InvalidEncodingError(ValidationError):
    """A compressed body the API refuses to inflate (e.g. too many gzip members)."""

    code = "invalid_content_encoding"


class InvalidRequestError(ValidationError):
    """The body is JSON but not ``{"data": ...}`` of the right shape."""

    code = "invalid_request"


class InvalidRecordError(ValidationError):
    """A record is not an object, an array of the right length, or a number."""

    code = "invalid_record"


class MissingFeatureError(ValidationError):
    code = "missing_feature"


class UnknownFeatureError(ValidationError):
    code = "unknown_feature"


class InvalidTypeError(ValidationError):
    """A feature value has the wrong JSON type (e.g. a string for a numeric feature)."""

    code = "invalid_type"


class NonFiniteNumberError(ValidationError):
    """NaN, Infinity or a number too large for float32."""

    code = "invalid_number"


class MissingValueError(ValidationError):
    """A ``null`` reached a model that cannot impute it (its prediction is not finite)."""

    code = "missing_value_not_supported"


class PredictionNotFiniteError(MlsysError):
    """The record is valid but the model's output for it is not finite (it
    overflowed, e.g. a linear model on inputs near the float32 limit): 422."""

    code = "prediction_not_finite"


class InvalidEventError(ValidationError):
    """The Lambda event cannot be read as an API Gateway request (e.g. a body
    flagged base64 that is not)."""

    code = "invalid_event"


class EmptyBatchError(ValidationError):
    code = "empty_batch"


class InvalidQueryError(ValidationError):
    code = "invalid_query"


class TooManyRecordsError(MlsysError):
    code = "too_many_records"


class PayloadTooLargeError(MlsysError):
    code = "payload_too_large"


class UnsupportedMediaTypeError(MlsysError):
    code = "unsupported_media_type"


class UnsupportedContentEncodingError(UnsupportedMediaTypeError):
    code = "unsupported_content_encoding"


class ForbiddenError(MlsysError):
    """The local server refuses a browser request from another origin or host name
    (:mod:`lambda_inference.local.origin`)."""

    code = "forbidden"


class RouteNotFoundError(MlsysError):
    code = "not_found"


class MethodNotAllowedError(MlsysError):
    code = "method_not_allowed"

    def __init__(self, message: str, *, allowed: tuple[str, ...]) -> None:
        super().__init__(message, details={"allowed": list(allowed)})
        self.allowed = allowed


class ModelUnavailableError(MlsysError):
    """The champion exists but could not be loaded."""

    code = "model_unavailable"
