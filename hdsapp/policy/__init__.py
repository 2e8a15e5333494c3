"""Authorization: one pure decision function over one declarative table (``rules.toml``).

Mechanism layer: imports neither services, endpoints, the web framework nor SQLAlchemy. Services
build a ``Resource`` and call ``decide``; repositories turn a ``RowPlan`` into SQL for lists.
"""

from hdsapp.policy.decide import (
    ALL_GROUPS,
    PUBLIC_ROUTE,
    Context,
    Decision,
    Resource,
    RowPlan,
    decide,
    route_action,
    row_conditions_in_use,
    row_plan,
)
from hdsapp.policy.table import (
    ActionSpec,
    Principal,
    ResourceType,
    Rule,
    Table,
    TableError,
    load_table,
    table_text,
)

__all__ = [
    "ALL_GROUPS",
    "PUBLIC_ROUTE",
    "ActionSpec",
    "Context",
    "Decision",
    "Principal",
    "Resource",
    "ResourceType",
    "RowPlan",
    "Rule",
    "Table",
    "TableError",
    "decide",
    "load_table",
    "route_action",
    "row_conditions_in_use",
    "row_plan",
    "table_text",
]
