"""`/_sandbox/customers`: the Instagram users who write to the business."""

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from app.sandbox.deps import SandboxStateDep
from app.sandbox.ids import new_customer_id, new_username
from app.sandbox.state import Customer

router = APIRouter()


class CustomerCreate(BaseModel):
    """A customer to create; what is left out gets a default (IGSID and username generated)."""

    id: str | None = Field(default=None, pattern=r"^\d+$", description="IGSID")
    username: str | None = None
    name: str | None = None
    profile_pic: str | None = None
    follower_count: int = Field(default=0, ge=0)
    is_user_follow_business: bool = False
    is_business_follow_user: bool = False
    is_verified_user: bool = False
    account_id: str | None = Field(
        default=None,
        pattern=r"^\d+$",
        description="The business account the customer writes to (default: the configured one)",
    )


def known_customer(customer_id: str, state: SandboxStateDep) -> Customer:
    """The customer the path names; 404 when there is none."""
    return state.require_customer(customer_id)


KnownCustomerDep = Annotated[Customer, Depends(known_customer)]


@router.post("/customers", status_code=201)
def create_customer(body: CustomerCreate, state: SandboxStateDep) -> dict[str, Any]:
    """Create a customer (an Instagram user with an IGSID for this business)."""
    fields = body.model_dump(exclude={"id", "username", "account_id"})
    account = state.account(body.account_id or "")
    if account is None:
        raise HTTPException(status_code=404, detail="no such business account")
    customer = Customer(
        account_id=account.id,
        id=body.id or new_customer_id(),
        username=body.username or new_username(),
        **fields,
    )
    return dataclasses.asdict(state.add_customer(customer))


@router.get("/customers")
def list_customers(state: SandboxStateDep) -> list[dict[str, Any]]:
    """All customers."""
    return [dataclasses.asdict(customer) for customer in state.customers()]


@router.get("/customers/{customer_id}")
def read_customer(customer: KnownCustomerDep) -> dict[str, Any]:
    """One customer, with consent and window state."""
    return dataclasses.asdict(customer)
