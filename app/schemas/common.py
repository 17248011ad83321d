"""Types shared by the API schemas."""

from typing import Annotated

from pydantic import BeforeValidator, Field


def int_id_to_str(value: object) -> object:
    # The original README printed ids as bare JSON numbers; accept them, keep them strings.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


IG_ID_PATTERN = r"^[0-9]{1,64}$"

InstagramId = Annotated[
    str,
    BeforeValidator(int_id_to_str),
    Field(
        pattern=IG_ID_PATTERN,
        description="An Instagram id (IGSID or IG_ID): digits, as a string.",
        examples=["1187429836452190"],
    ),
]

# The ids the API documentation's examples show.
SAMPLE_CUSTOMER_ID = "1187429836452190"
SAMPLE_MID = "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAwMTIzNDU2Nzg5OjM0MDI4MjM2Njg0MTcx...ZDZD"
