"""MEDIA_ARCHIVE=local|s3: the download worker (streamed, size cap, type check by bytes, host
allow-list, retries), serving the bytes, purge on unsend, retention and account removal; S3
against a real S3-compatible server (moto in server mode, over HTTP)."""

import contextlib
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clients.cdn import CdnClient
from app.config import Settings
from app.models import Media
from app.sandbox import webhooks
from app.services.housekeeping import Housekeeper
from app.services.media.downloads import MediaDownloader, delete_media_of_account
from app.services.media.storage import LocalStore, MediaStore, S3Store
from tests.conftest import StartShared
from tests.helpers import (
    ACCOUNT_ID,
    Clock,
    ServiceClient,
    customer_writes,
    new_customer,
    wait_until,
)
from tests.stack import SharedService

BUCKET = "insta-media"


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


def archive_settings(media_dir: Path) -> dict[str, Any]:
    return {
        "media_archive": "local",
        "media_dir": str(media_dir),
        "media_allowed_hosts": "127.0.0.1",
        "media_worker_idle_seconds": 0.02,
    }


@pytest.fixture
def archiving(start_shared: StartShared, media_dir: Path) -> SharedService:
    """The service archiving to a local directory, its worker paused (tests run its rounds)."""
    return start_shared(workers=False, **archive_settings(media_dir))


@pytest.fixture
def api(archiving: SharedService) -> Iterator[ServiceClient]:
    with ServiceClient(archiving.url) as client:
        yield client


def downloader_of(service: SharedService, **overrides: Any) -> MediaDownloader:
    """The service's own downloader, or one like it with other settings."""
    worker = service.app.state.workers[-1]
    if not overrides:
        downloader: MediaDownloader = worker.downloader
        return downloader
    clock = overrides.pop("clock", Clock())
    settings = service.settings.model_copy(update=overrides)
    return MediaDownloader(
        session_factory=service.app.state.session_factory,
        store=service.app.state.media_store,
        cdn=CdnClient(settings),
        settings=settings,
        clock=clock,
    )


def write_file(
    meta: ServiceClient,
    kind: str = "image",
    *,
    size: int | None = None,
    mode: str = "live",
    customer_id: str | None = None,
) -> dict[str, Any]:
    """A customer sends one attachment whose file (on the sandbox's CDN) is unique to the
    test (padded to a random size) unless `size` is given."""
    customer_id = customer_id or new_customer(meta)["id"]
    written = customer_writes(meta, customer_id, text=None, attachments=[{"type": kind}])
    [attachment] = written["payload"]["entry"][0]["messaging"][0]["message"]["attachments"]
    url = attachment["payload"]["url"]
    asset_id = parse_qs(urlsplit(url).query)["asset_id"][0]
    size = size or 2000 + secrets.randbelow(100_000)
    meta.put(f"/_sandbox/media/{asset_id}", json={"mode": mode, "size_bytes": size})
    return {"mid": written["mid"], "url": url, "customer_id": customer_id, "asset_id": asset_id}


def only_media(db: Session) -> Media:
    db.expire_all()
    media = db.scalars(select(Media)).one()
    db.commit()
    return media


def test_pending_media_is_202_then_served_from_the_directory_once_archived(
    archiving: SharedService, api: ServiceClient, meta: ServiceClient, db: Session, media_dir: Path
) -> None:
    written = write_file(meta, "image")
    media = only_media(db)
    assert (media.state, media.due_at is not None) == ("pending", True)
    pending = api.get(f"/api/v1/media/{media.id}", allow_redirects=False)
    assert (pending.status_code, pending.headers["retry-after"]) == (202, "5")
    assert pending.json()["code"] == "media_pending"

    assert downloader_of(archiving).run_once() is True

    original = requests.get(written["url"], timeout=5).content
    media = only_media(db)
    digest = hashlib.sha256(original).hexdigest()
    assert (media.state, media.content_type, media.size_bytes) == (
        "stored",
        "image/png",
        len(original),
    )
    assert media.sha256 == digest
    assert media.storage_key == f"{digest[:2]}/{digest}.png"
    assert (media_dir / media.storage_key).read_bytes() == original
    served = api.get(f"/api/v1/media/{media.id}", allow_redirects=False)
    assert (served.status_code, served.headers["content-type"]) == (200, "image/png")
    assert served.content == original
    shown = api.get(f"/api/v1/messages/{written['mid']}").json()["attachments"][0]
    assert shown["state"] == "stored"


def test_an_archived_file_missing_from_the_directory_is_served_from_its_url(
    archiving: SharedService, api: ServiceClient, meta: ServiceClient, db: Session, media_dir: Path
) -> None:
    written = write_file(meta, "image")
    downloader_of(archiving).run_once()
    media = only_media(db)
    (media_dir / (media.storage_key or "")).unlink()

    response = api.get(f"/api/v1/media/{media.id}", allow_redirects=False)

    assert (response.status_code, response.headers["location"]) == (302, written["url"])


def test_the_worker_archives_in_the_background(
    start_shared: StartShared, meta: ServiceClient, db: Session, media_dir: Path
) -> None:
    service = start_shared(**archive_settings(media_dir))  # its worker running
    write_file(meta, "file", size=None)

    wait_until(lambda: only_media(db).state == "stored", what="the PDF archived")

    media = only_media(db)
    assert media.content_type == "application/pdf"
    with ServiceClient(service.url) as api:
        assert api.get(f"/api/v1/media/{media.id}").content.startswith(b"%PDF-")


@pytest.mark.parametrize(
    ("mode", "size", "state", "said"),
    [
        ("live", 5000, "too_large", "more than 4096 bytes"),
        ("error_page", None, "unsupported", "not an allowed media type (the CDN said text/plain"),
        ("expired", None, "expired", "the CDN answered 403"),
    ],
)
def test_a_refused_file_keeps_its_url_and_says_why(
    archiving: SharedService,
    api: ServiceClient,
    meta: ServiceClient,
    db: Session,
    mode: str,
    size: int | None,
    state: str,
    said: str,
) -> None:
    written = write_file(meta, "video", size=size or 100, mode=mode)

    downloader_of(archiving, media_max_bytes=4096).run_once()

    media = only_media(db)
    assert (media.state, media.storage_key, media.source_url) == (state, None, written["url"])
    assert media.error is not None
    assert media.error.startswith(said)
    shown = api.get(f"/api/v1/messages/{written['mid']}").json()["attachments"][0]
    assert (shown["state"], shown["source_url"]) == (state, written["url"])


def test_files_from_outside_the_allowed_hosts_are_never_fetched(
    archiving: SharedService, api: ServiceClient, db: Session
) -> None:
    ids = {"account_id": ACCOUNT_ID, "customer_id": "1500000000000091", "mid": "elsewhere"}
    urls = ["https://evil.example.com/a.png", "http://lookaside.fbsbx.com/plain-http.png"]
    attachments = [{"type": "image", "payload": {"url": url}} for url in urls]
    item = webhooks.message_item(**ids, timestamp_ms=1745923800000, attachments=attachments)
    assert api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=[item])).status_code == 200

    downloader_of(archiving).run_once()

    db.expire_all()
    rows = db.scalars(select(Media).order_by(Media.position)).all()
    assert [(row.state, row.error) for row in rows] == [
        ("unsupported", "host not allowed: evil.example.com"),
        ("unsupported", "host not allowed: lookaside.fbsbx.com"),
    ]


def test_a_transient_failure_is_retried_with_backoff_then_failed(
    archiving: SharedService, api: ServiceClient, db: Session
) -> None:
    ids = {"account_id": ACCOUNT_ID, "customer_id": "1500000000000092", "mid": "unreachable"}
    nowhere = {"type": "image", "payload": {"url": "http://127.0.0.1:9/ig_messaging_cdn/?a=1"}}
    item = webhooks.message_item(**ids, timestamp_ms=1745923800000, attachments=[nowhere])
    assert api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=[item])).status_code == 200
    clock = Clock()
    downloader = downloader_of(archiving, clock=clock, media_max_bytes=25 * 1024 * 1024)

    waits = []
    for _ in range(4):
        assert downloader.run_once() is True
        media = only_media(db)
        assert media.state == "pending"
        assert media.due_at is not None
        waits.append(round((media.due_at - clock.now).total_seconds()))
        assert downloader.run_once() is False  # not due yet
        clock.now = media.due_at
    downloader.run_once()

    assert waits == [30, 120, 600, 3600]
    media = only_media(db)
    assert (media.state, media.attempts) == ("failed", 5)
    assert media.error is not None
    assert media.error.startswith("unreachable")


def test_unsend_purges_the_bytes_at_once_unless_another_message_has_the_same_file(
    archiving: SharedService, api: ServiceClient, meta: ServiceClient, db: Session, media_dir: Path
) -> None:
    size = 3000 + secrets.randbelow(100_000)
    first = write_file(meta, "image", size=size)
    second = write_file(meta, "image", size=size, customer_id=first["customer_id"])
    downloader = downloader_of(archiving)
    downloader.run_once()
    db.expire_all()
    rows = db.scalars(select(Media).order_by(Media.id)).all()
    assert [row.state for row in rows] == ["stored", "stored"]
    assert rows[0].storage_key == rows[1].storage_key  # content-addressed: kept once
    path = media_dir / (rows[0].storage_key or "")

    unsend = {"mid": first["mid"]}
    assert meta.post(f"/_sandbox/customers/{first['customer_id']}/unsend", json=unsend).ok
    downloader.run_once()
    assert path.exists()  # the second message still shows it

    unsend = {"mid": second["mid"]}
    assert meta.post(f"/_sandbox/customers/{first['customer_id']}/unsend", json=unsend).ok
    downloader.run_once()

    assert not path.exists()
    db.expire_all()
    assert [(row.storage_key, row.deleted_at is not None) for row in db.scalars(select(Media))] == [
        (None, True),
        (None, True),
    ]
    gone = api.get(f"/api/v1/media/{rows[1].id}")
    assert (gone.status_code, gone.json()["code"]) == (410, "media_deleted")


def test_a_message_unsent_while_its_file_downloads_leaves_no_bytes(
    archiving: SharedService,
    meta: ServiceClient,
    db: Session,
    media_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    written = write_file(meta, "image")
    digest = hashlib.sha256(requests.get(written["url"], timeout=5).content).hexdigest()
    downloader = downloader_of(
        archiving, media_max_bytes=25 * 1024 * 1024
    )  # a CDN client of its own
    download = downloader.cdn.download

    def unsent_meanwhile(url: str, **kwargs: Any) -> Any:
        unsend = {"mid": written["mid"]}
        assert meta.post(f"/_sandbox/customers/{written['customer_id']}/unsend", json=unsend).ok
        return download(url, **kwargs)

    monkeypatch.setattr(downloader.cdn, "download", unsent_meanwhile)
    downloader.run_once()

    media = only_media(db)
    assert (media.deleted_at is not None, media.storage_key) == (True, None)
    assert not (media_dir / digest[:2] / f"{digest}.png").exists()


def test_bytes_older_than_the_retention_are_deleted_and_the_url_stays(
    archiving: SharedService, api: ServiceClient, meta: ServiceClient, db: Session, media_dir: Path
) -> None:
    written = write_file(meta, "image")
    downloader_of(archiving).run_once()
    media = only_media(db)
    path = media_dir / (media.storage_key or "")
    settings = archiving.settings.model_copy(update={"media_retention_days": 30})
    clock = Clock()
    housekeeper = Housekeeper(
        session_factory=archiving.app.state.session_factory,
        settings=settings,
        store=archiving.app.state.media_store,
        clock=clock,
    )

    housekeeper.run_once()
    assert path.exists()
    clock.advance(days=31)
    housekeeper.run_once()

    assert not path.exists()
    media = only_media(db)
    assert (media.state, media.storage_key, media.source_url) == ("remote", None, written["url"])
    redirect = api.get(f"/api/v1/media/{media.id}", allow_redirects=False)
    assert (redirect.status_code, redirect.headers["location"]) == (302, written["url"])


def test_removing_an_account_deletes_its_media(
    archiving: SharedService, meta: ServiceClient, db: Session, media_dir: Path
) -> None:
    write_file(meta, "image")
    downloader = downloader_of(archiving)
    downloader.run_once()
    path = media_dir / (only_media(db).storage_key or "")
    assert path.exists()

    with archiving.app.state.session_factory() as session:
        assert delete_media_of_account(session, ACCOUNT_ID) == 1
        session.commit()
    downloader.run_once()

    assert not path.exists()
    assert only_media(db).deleted_at is not None


def test_the_local_store_keeps_keys_inside_its_directory(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "media"))

    with pytest.raises(ValueError, match="inside MEDIA_DIR"):
        store.delete("../outside")
    assert store.problem() is None
    assert LocalStore("/proc/forbidden").problem() is not None


# --- S3 (any S3-compatible store) --------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3-compatible server (moto) over HTTP on a free port, for the whole run."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_settings(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = boto3.client("s3", endpoint_url=s3_server, region_name="eu-west-1")
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
    return {
        "media_archive": "s3",
        "s3_bucket": BUCKET,
        "s3_endpoint_url": s3_server,
        "s3_region": "eu-west-1",
        "media_allowed_hosts": "127.0.0.1",
    }


def test_s3_archive_stores_privately_and_serves_a_presigned_url_of_hours(
    start_shared: StartShared, s3_settings: dict[str, Any], meta: ServiceClient, db: Session
) -> None:
    service = start_shared(workers=False, **s3_settings)
    store: MediaStore = service.app.state.media_store
    assert isinstance(store, S3Store)
    assert store.problem() is None
    written = write_file(meta, "video")
    downloader_of(service).run_once()
    media = only_media(db)
    original = requests.get(written["url"], timeout=5).content

    assert media.state == "stored"
    stored = store.client.get_object(Bucket=BUCKET, Key=media.storage_key)
    assert stored["Body"].read() == original
    assert stored["ContentType"] == "video/mp4"
    with ServiceClient(service.url) as api:
        redirect = api.get(f"/api/v1/media/{media.id}", allow_redirects=False)
    assert redirect.status_code == 302
    presigned = redirect.headers["location"]
    assert presigned.startswith(f"{s3_settings['s3_endpoint_url']}/{BUCKET}/")
    assert parse_qs(urlsplit(presigned).query)["X-Amz-Expires"] == ["21600"]
    assert requests.get(presigned, timeout=5).content == original
    grants = store.client.get_object_acl(Bucket=BUCKET, Key=media.storage_key)["Grants"]
    assert all("AllUsers" not in str(grant["Grantee"]) for grant in grants)

    assert meta.post(
        f"/_sandbox/customers/{written['customer_id']}/unsend", json={"mid": written["mid"]}
    ).ok
    downloader_of(service).run_once()
    listed = store.client.list_objects_v2(Bucket=BUCKET, Prefix=media.storage_key)
    assert listed.get("KeyCount", 0) == 0


def test_an_unreachable_s3_store_is_reported() -> None:
    settings = Settings(
        _env_file=None,
        allow_open_api=True,
        media_archive="s3",
        s3_bucket=BUCKET,
        s3_endpoint_url="http://127.0.0.1:9",
        s3_region="eu-west-1",
    )

    assert "not usable" in (S3Store(settings).problem() or "")


def test_ready_reports_the_media_store_and_the_downloads_waiting(
    archiving: SharedService, api: ServiceClient, meta: ServiceClient
) -> None:
    write_file(meta, "image")

    body = api.get("/ready").json()

    assert body["status"] == "ready"
    assert body["media"] == {"archive": "local", "store": "ok", "pending": 1}
    assert 'insta_background_backlog{queue="media"} 1.0' in api.get("/metrics").text
