"""Pure DICOM logic: UIDs, transfer syntaxes, bounded file parsing, index keys, names."""

from pydicom import config as _pydicom_config

# An archive keeps what it receives: values that break a VR's rules (a 17-character DS, say)
# are stored and served as they are, not warned about on every read.
_pydicom_config.settings.reading_validation_mode = _pydicom_config.IGNORE
