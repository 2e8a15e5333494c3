from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from hdsapp.system import service
from hdsapp.system.schemas import Liveness, Readiness

router = APIRouter(tags=["service"])


@router.get("/healthz", response_model=Liveness)
def healthz() -> Liveness:
    return Liveness()


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(request: Request) -> JSONResponse:
    result = service.readiness(
        database=request.app.state.database,
        celery=request.app.state.celery,
        keyring=request.app.state.keyring,
    )
    return JSONResponse(result.model_dump(), status_code=200 if result.ready else 503)
