"""The PWA, served from the same origin as the API."""
