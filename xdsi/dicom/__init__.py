"""Pure DICOM logic: UIDs, transfer syntaxes, bounded file parsing, index keys, names."""
