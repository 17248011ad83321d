"""How each account's history stands, for `/ready` and `fab doctor`: the gaps found and filled
by sweeps and checks, the last sweep, its last error, and backfills in progress."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.repositories import sync as sync_rows


@dataclass(frozen=True)
class AccountHistory:
    account_id: str
    gaps_found: int
    gaps_filled: int
    last_sweep_at: datetime | None
    last_error: str | None
    backfills_running: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "gaps_found": self.gaps_found,
            "gaps_filled": self.gaps_filled,
            "last_sweep_at": self.last_sweep_at.isoformat() if self.last_sweep_at else None,
            "last_error": self.last_error,
            "backfills_running": self.backfills_running,
        }

    def line(self) -> str:
        swept = self.last_sweep_at.strftime("%Y-%m-%d %H:%M UTC") if self.last_sweep_at else "never"
        text = (
            f"account {self.account_id}: {self.gaps_found} missing messages found, "
            f"{self.gaps_filled} filled with their content; last sweep {swept}"
        )
        if self.backfills_running:
            text += f"; {self.backfills_running} backfill(s) running"
        return text + (f"; last error: {self.last_error}" if self.last_error else "")


def history_status(session: Session) -> list[AccountHistory]:
    running = sync_rows.running_jobs_by_account(session)
    return [
        AccountHistory(
            account_id=state.account_id,
            gaps_found=state.gaps_found,
            gaps_filled=state.gaps_filled,
            last_sweep_at=state.last_sweep_at,
            last_error=state.last_error,
            backfills_running=running.get(state.account_id, 0),
        )
        for state in sync_rows.all_sync_states(session)
    ]
