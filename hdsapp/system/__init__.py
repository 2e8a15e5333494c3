"""The service itself: liveness, readiness and the housekeeping heartbeat."""
