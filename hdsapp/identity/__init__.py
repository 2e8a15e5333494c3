"""Identity: accounts, second factors, OpenID Connect federation, sessions and tokens."""
