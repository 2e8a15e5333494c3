from tests.groups.world import world

__all__ = ["world"]
