"""FastAPI dependencies: the session, the settings, the clients and one alias per service."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.clients.instagram import InstagramClient
from app.config import Settings
from app.errors import UnauthorizedError
from app.security import secrets_equal
from app.services.accounts import BusinessAccount
from app.services.conversations import ConversationService
from app.services.messages import HistoryService
from app.services.sending import SendService
from app.services.users import UserService
from app.services.webhooks import WebhookService


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(request: Request) -> Iterator[Session]:
    """A session per request. It never commits: services end their use cases with commit()."""
    session: Session = request.app.state.session_factory()
    try:
        yield session
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


def get_instagram(request: Request) -> InstagramClient:
    return request.app.state.instagram


InstagramDep = Annotated[InstagramClient, Depends(get_instagram)]


def get_business_account(request: Request) -> BusinessAccount:
    return request.app.state.business_account


BusinessAccountDep = Annotated[BusinessAccount, Depends(get_business_account)]

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="`Authorization: Bearer <API_KEY>` (required when API_KEY is set).",
)


def require_api_key(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """With API_KEY set, refuse requests without `Authorization: Bearer <API_KEY>`."""
    expected = settings.api_key
    if expected is None:
        return
    if credentials is None or not secrets_equal(
        credentials.credentials, expected.get_secret_value()
    ):
        raise UnauthorizedError(
            "Missing or invalid API key: send `Authorization: Bearer <API_KEY>`.",
            headers={"WWW-Authenticate": "Bearer"},
        )


def get_webhook_service(session: SessionDep, settings: SettingsDep) -> WebhookService:
    return WebhookService(session=session, settings=settings)


WebhookServiceDep = Annotated[WebhookService, Depends(get_webhook_service)]


def get_user_service(
    session: SessionDep, instagram: InstagramDep, settings: SettingsDep
) -> UserService:
    return UserService(session=session, instagram=instagram, settings=settings)


UserServiceDep = Annotated[UserService, Depends(get_user_service)]


def get_history_service(session: SessionDep, users: UserServiceDep) -> HistoryService:
    return HistoryService(session=session, users=users)


HistoryServiceDep = Annotated[HistoryService, Depends(get_history_service)]


def get_send_service(
    session: SessionDep, instagram: InstagramDep, account: BusinessAccountDep
) -> SendService:
    return SendService(session=session, instagram=instagram, account=account)


SendServiceDep = Annotated[SendService, Depends(get_send_service)]


def get_conversation_service(session: SessionDep) -> ConversationService:
    return ConversationService(session=session)


ConversationServiceDep = Annotated[ConversationService, Depends(get_conversation_service)]
