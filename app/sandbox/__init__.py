"""A stand-in for Meta's Instagram Graph API that runs locally and over real HTTP.

It answers `/me`, the User Profile API and the Send API like graph.instagram.com, and
delivers signed webhooks (customer messages, echoes) to the service. `/_sandbox/...`
routes let tests and demos drive it. Run it with `python -m app.sandbox`.
"""

from app.sandbox.config import SandboxConfig
from app.sandbox.main import create_sandbox_app
from app.sandbox.state import SandboxState

__all__ = ["SandboxConfig", "SandboxState", "create_sandbox_app"]
