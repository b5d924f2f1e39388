"""Exceptions for failures a user can cause and fix: each message names the thing and the fix."""


class PipelineError(Exception):
    """A predictable failure (bad parameter, bad data, unreachable source, full disk)."""


class ConfigError(PipelineError, ValueError):
    """A parameter has a value the pipeline cannot use."""


class DataError(PipelineError):
    """A data file is missing, corrupt, or not what it claims to be."""


class SourceError(PipelineError):
    """No configured source could deliver a data file."""


class TrackingError(PipelineError):
    """The experiment tracker (MLflow) is not installed, not configured, or does not answer."""
