"""The ceiling of the stack: one synchronous FastAPI endpoint returning `{}`.

Served by the bench under the same uvicorn settings as the service, so the ratio of a
scenario's req/s to this app's says how much of the stack's capacity the service's own work
takes.

With `BARE_DATABASE_URL` set it also answers `POST /webhook` the way the least a durable
intake can do: the body read, then stored by one INSERT, committed before the 200 (the
`floor-insert` scenarios). `BARE_DATABASE_LAYER` picks how: `psycopg2` (one round trip: the
INSERT in autocommit, on a connection per thread) or `sqlalchemy` (a Session from a pooled
engine, as the service runs it: BEGIN, the INSERT, COMMIT).
"""

import os
import threading
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

CREATE_FLOOR_TABLE = (
    "CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, body bytea NOT NULL,"
    " received_at timestamptz NOT NULL DEFAULT now())"
)
COUNT_FLOOR = "SELECT count(*) FROM bench_floor"
EMPTY_FLOOR = "TRUNCATE bench_floor"

app = FastAPI()


@app.get("/")
def root() -> dict[str, str]:
    """Nothing: what a request costs uvicorn, Starlette and FastAPI alone."""
    return {}


async def raw_body(request: Request) -> bytes:
    return await request.body()


def _psycopg2_store() -> Any:
    import psycopg2

    dsn = os.environ["BARE_DATABASE_URL"].replace("postgresql+psycopg2://", "postgresql://")
    local = threading.local()

    def store(body: bytes) -> None:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = psycopg2.connect(dsn)
            connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO bench_floor (body) VALUES (%s)", (body,))

    return store


def _sqlalchemy_store() -> Any:
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    engine = create_engine(os.environ["BARE_DATABASE_URL"], pool_size=50)
    insert = text("INSERT INTO bench_floor (body) VALUES (:body)")

    def store(body: bytes) -> None:
        with Session(engine) as session:
            session.execute(insert, {"body": body})
            session.commit()

    return store


if os.environ.get("BARE_DATABASE_URL"):
    layer = os.environ.get("BARE_DATABASE_LAYER", "psycopg2")
    store = _sqlalchemy_store() if layer == "sqlalchemy" else _psycopg2_store()

    @app.post("/webhook")
    def webhook(body: Annotated[bytes, Depends(raw_body)]) -> dict[str, str]:
        """The body stored durably before the answer: nothing checked, nothing parsed."""
        store(body)
        return {}
