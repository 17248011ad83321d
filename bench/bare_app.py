"""The ceiling of the stack: one synchronous FastAPI endpoint returning `{}`.

Served by the bench under the same uvicorn settings as the service, so the ratio of a
scenario's req/s to this app's says how much of the stack's capacity the service's own work
takes.
"""

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def root() -> dict[str, str]:
    """Nothing: what a request costs uvicorn, Starlette and FastAPI alone."""
    return {}
