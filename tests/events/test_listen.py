"""`fab listen`: prints each event as it happens and forwards it, signed, to a local URL."""

import threading

from standardwebhooks.webhooks import Webhook

from app.listen import Listener
from app.sandbox import webhooks
from tests.events.receiver import Receiver
from tests.helpers import ACCOUNT_ID, CUSTOMER_ID, ServiceClient


def test_listen_prints_and_forwards_each_event_signed(
    api: ServiceClient, receiver: Receiver
) -> None:
    printed: list[str] = []
    listener = Listener(
        url=api.base_url,
        api_key=None,
        types=["message.received"],
        forward_to=receiver.url,
        out=printed.append,
    )
    listener.last_seq = 0  # from the first event on, whenever the stream connects
    follower = threading.Thread(target=listener.run, kwargs={"stop_after": 1}, daemon=True)
    follower.start()
    item = webhooks.message_item(
        account_id=ACCOUNT_ID,
        customer_id=CUSTOMER_ID,
        mid="m-1",
        timestamp_ms=1745923800000,
        text="Hi!",
    )
    assert api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=[item])).status_code == 200

    follower.join(timeout=10)
    assert not follower.is_alive()
    [got] = receiver.all()
    payload = Webhook(listener.secret).verify(got.body, got.headers)
    assert payload["data"]["message"]["mid"] == "m-1"
    line, forwarded = printed
    assert "message.received" in line
    assert CUSTOMER_ID in line
    assert '"Hi!"' in line
    assert forwarded.endswith(f"{receiver.url} 200")
