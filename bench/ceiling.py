"""The ceiling: bare FastAPI with one trivial route, the most any FastAPI service can answer."""

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

# FastAPI's native OpenTelemetry hooks are on by default and cost 5-7% per
# trivial request even with no provider configured. final/ turns them off, so
# the ceiling it is measured against does too; `app_with_telemetry` keeps the
# defaults, so every run also shows what the hooks cost.
TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

app = FastAPI(telemetry=TELEMETRY_OFF)
app_with_telemetry = FastAPI()


@app.get("/ping")
@app_with_telemetry.get("/ping")
async def ping() -> dict[str, str]:
    """Answer with a constant: no I/O, no dependencies, no validation."""
    return {"ping": "pong"}
