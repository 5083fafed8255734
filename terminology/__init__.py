"""Billable terminology: versioned code systems, concept maps, claim edits and fees.

``terminology.service.TerminologyService`` is the Python API the coding engine uses;
``terminology.fhir_api.router`` serves the FHIR terminology operations; ``terminology.cli``
loads official release files as new versions. See docs/terminology.md.
"""
