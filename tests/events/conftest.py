"""Fixtures of the events tests: a consumer's endpoint over real HTTP."""

from collections.abc import Iterator

import pytest

from tests.events.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()
