"""Bulk Data Access ``$export`` (HL7 FHIR Bulk Data IG v2): jobs, NDJSON files, the runner.

A kick-off (``server.api.export``) validates the request, checks the token's scopes and
stores a job record; ``ExportService`` (started in the app lifespan) runs jobs in an
asyncio task, paging through the store with keyset paging through the repository facade
(so ``authorize``, ``restrict_search`` and ``can_see`` apply with the grants of the client
that asked) and appending NDJSON files that are split per type and by size. Job state is
kept in internal records of the FHIR store (``server.bulk.jobs``), so it survives a restart
and works on SQLite and MongoDB alike; a restarted server resumes an unfinished job from
its last checkpoint. See docs/bulk.md.
"""
