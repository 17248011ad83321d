"""/docs works without internet: Swagger UI and ReDoc come from the service itself, checked in
a real headless browser (Debian's chromium; this machine reaches no CDN anyway)."""

import re
import shutil
import subprocess

import pytest

from app.sandbox.server import BackgroundServer
from tests.conftest import StartService
from tests.helpers import API_KEY, ServiceClient

BROWSER = next(
    (path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None
)
CDN = re.compile(r"cdn\.jsdelivr\.net|unpkg\.com|fonts\.googleapis\.com|fastapi\.tiangolo\.com")


@pytest.fixture
def guarded(start_service: StartService) -> BackgroundServer:
    return start_service(api_key=API_KEY, allow_open_api=False)


def rendered(url: str) -> str:
    """The DOM of `url` after its scripts ran, as headless Chromium sees it."""
    assert BROWSER is not None
    completed = subprocess.run(
        [
            BROWSER,
            *("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic"),
            *("--no-first-run", "--disable-background-networking", "--disable-component-update"),
            *("--disable-sync", "--virtual-time-budget=15000", "--dump-dom", url),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


def test_the_documentation_pages_load_nothing_from_a_cdn(guarded: BackgroundServer) -> None:
    with ServiceClient(guarded.url) as client:
        pages = {path: client.get(path) for path in ("/docs", "/redoc")}
        assets = [
            client.get(src)
            for page in pages.values()
            for src in re.findall(r'(?:src|href)="(/[^"]+)"', page.text)
        ]

    for path, page in pages.items():
        assert page.status_code == 200, path
        assert not CDN.search(page.text), path
    assert assets
    assert all(asset.status_code == 200 for asset in assets), [a.url for a in assets]


@pytest.mark.slow
@pytest.mark.skipif(BROWSER is None, reason="no chromium installed (.ci/run installs it)")
def test_swagger_ui_renders_every_operation_and_the_authorize_button(
    guarded: BackgroundServer,
) -> None:
    dom = rendered(f"{guarded.url}/docs")

    assert "opblock" in dom, dom[:2000]
    for path in ("/webhook", "/messages", "/api/v1/conversations", "/api/v1/messages/{mid}"):
        assert f'data-path="{path}"' in dom, path
    assert re.search(r'class="btn authorize', dom)


@pytest.mark.slow
@pytest.mark.skipif(BROWSER is None, reason="no chromium installed (.ci/run installs it)")
def test_redoc_renders_the_operations(guarded: BackgroundServer) -> None:
    dom = rendered(f"{guarded.url}/redoc")

    assert "List conversations" in dom, dom[:2000]
