"""Dataset serializers: PS3.19 Native DICOM Model XML and the PS3.18 Annex F JSON model."""
