"""SMART on FHIR security: tokens, scopes, the access policy and the OAuth2 endpoints.

``server.auth.setup.build_security`` wires everything into an app; the rest of Billable
only sees a ``RequestContext`` carrying ``Grants`` and the ``SmartPolicy`` the repository
facade consults on every interaction.
"""
