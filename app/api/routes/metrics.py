"""`/metrics`: Prometheus text format (behind the API key when one is set)."""

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app import metrics
from app.api.deps import StatusReporterDep

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def read_metrics(reporter: StatusReporterDep) -> Response:
    """Counters and histograms of this process, and the state read from the database now."""
    report = reporter.report()
    return Response(metrics.render(report.metrics_sample()), media_type=CONTENT_TYPE_LATEST)
