from typing import Literal

from pydantic import BaseModel


class Check(BaseModel):
    name: Literal["database", "schema", "broker", "keys"]
    ok: bool
    reason: str | None = None


class Readiness(BaseModel):
    ready: bool
    checks: list[Check]


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"
