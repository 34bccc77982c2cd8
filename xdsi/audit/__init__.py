"""ATNA audit (IHE ITI-20): DICOM audit messages (PS3.15 A.5) and their syslog sender, off the request path."""
