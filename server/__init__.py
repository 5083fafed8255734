"""Billable: an HL7 FHIR R4 server for coded encounters."""

__version__ = "0.1.0"
