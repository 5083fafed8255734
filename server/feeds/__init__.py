"""EHR feeds: turn what an EHR (or a generator standing in for one) exports into the
resources Billable expects, before they are loaded (``billable feed ...``)."""
