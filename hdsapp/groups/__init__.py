"""Care groups, memberships and invitations (API.md, "Care groups")."""
