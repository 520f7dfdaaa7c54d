"""Exceptions with messages meant for the user: each names the file, trial or setting at fault."""


class HcldError(Exception):
    """Base class: an error the user can act on (the CLI prints it without a traceback)."""


class DataError(HcldError):
    """Bad or missing input data (corpus folder, label file, audio file, manifest, feature store)."""


class MissingAssetError(HcldError):
    """A local file we cannot download here (checkpoint, RoBERTa folder): says what to get and where."""


class TrialFailed(HcldError):
    """A trial stopped on purpose (NaN/inf loss, empty fold): the runner records it as failed."""


class ConfigError(HcldError, ValueError):
    """A trial setting outside its allowed values (raised when a TrialConfig is built)."""
