"""ASC X12 5010: 837P/837I out, 835 remittances and 999/277CA acknowledgements in.

Claims leave a provider as 837s and payments come back as 835s; this package turns
Billable's stored Claims into 837s and posts the answers back as FHIR resources, all
through the ``Repository`` (its policy, validation, Provenance and audit apply).

Modules, one idea each: ``segments`` (writing segments and elements), ``control``
(interchange control numbers that never repeat, persisted), ``envelope`` (ISA/GS/ST
around transaction sets), ``parties`` (submitter, receiver and billing provider from
the settings), ``gather`` (a Claim and everything it refers to, read from the store),
``elements`` (names, addresses, NPIs, and the report of what is missing),
``loops_837`` (the loops 837P and 837I share), ``build_837p`` and ``build_837i``,
``ledger`` (what was sent, patient control numbers, acknowledgements), ``outbound``
(one claim or a batch per payer), ``reader`` (pyx12: tokenising and validating inbound
files, errors named by segment and element), ``remit`` (parsing 835s), ``posting``
(835 -> ClaimResponse + PaymentReconciliation), ``acks`` (999/277CA -> accepted or back
to the coders' queue), ``inbound`` (dispatch of an inbound file) and ``cli``.
"""
