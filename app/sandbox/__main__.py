"""`python -m app.sandbox`: run the Graph API sandbox in the foreground."""

import argparse

import uvicorn

from app.sandbox.config import SandboxConfig
from app.sandbox.main import create_sandbox_app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; they win over the environment and `.env`."""
    parser = argparse.ArgumentParser(
        prog="python -m app.sandbox",
        description="Emulate graph.instagram.com and deliver signed webhooks to insta-service.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=8001, help="port to listen on")
    parser.add_argument(
        "--webhook-url", help="where the service receives webhooks (env SANDBOX_WEBHOOK_URL)"
    )
    parser.add_argument(
        "--latency-ms", type=int, help="delay before every Graph answer (env SANDBOX_LATENCY_MS)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Build the config from env/.env plus arguments and serve until interrupted."""
    args = parse_args(argv)
    overrides = {"webhook_url": args.webhook_url, "latency_ms": args.latency_ms}
    config = SandboxConfig(**{key: value for key, value in overrides.items() if value is not None})
    print(
        f"Instagram Graph sandbox listening on http://{args.host}:{args.port} "
        f"(account {config.account_id}), delivering webhooks to {config.webhook_url}",
        flush=True,
    )
    uvicorn.run(create_sandbox_app(config), host=args.host, port=args.port, access_log=False)


if __name__ == "__main__":
    main()
