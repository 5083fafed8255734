"""Submitter, receiver and the configured billing provider (``Settings.x12_*``).

The billing provider of a claim is its ``Claim.provider`` Organization when that carries
an NPI, tax id and address; what it lacks comes from the configured billing provider
(a practice bills under one NPI and tax id whatever the Encounter says), and what
neither has is reported as missing (``elements.Report``).
"""

from __future__ import annotations

from dataclasses import dataclass

from server.config import Settings


@dataclass(frozen=True, slots=True)
class Parties:
    usage: str
    sender_id: str
    receiver_id: str
    submitter_name: str
    submitter_id: str
    submitter_contact: str
    submitter_phone: str
    receiver_name: str
    billing_name: str | None
    billing_npi: str | None
    billing_tax_id: str | None
    billing_taxonomy: str | None
    billing_address: str | None
    billing_city: str | None
    billing_state: str | None
    billing_zip: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> Parties:
        return cls(
            usage=settings.x12_usage,
            sender_id=settings.x12_sender_id,
            receiver_id=settings.x12_receiver_id,
            submitter_name=settings.x12_submitter_name,
            submitter_id=settings.x12_submitter_id,
            submitter_contact=settings.x12_submitter_contact,
            submitter_phone=settings.x12_submitter_phone,
            receiver_name=settings.x12_receiver_name,
            billing_name=settings.x12_billing_name,
            billing_npi=settings.x12_billing_npi,
            billing_tax_id=settings.x12_billing_tax_id,
            billing_taxonomy=settings.x12_billing_taxonomy,
            billing_address=settings.x12_billing_address,
            billing_city=settings.x12_billing_city,
            billing_state=settings.x12_billing_state,
            billing_zip=settings.x12_billing_zip,
        )
