"""The one table the bench prints, as aligned text or as Markdown, with the issue's targets."""

from collections.abc import Sequence
from dataclasses import dataclass

from bench.scenarios import Row

RSS_LIMIT_MB = 200
HISTORY_P50_GROWTH = 1.5


@dataclass(frozen=True)
class Verdict:
    """A target of issue 6 and whether a row meets it."""

    target: str
    met: bool

    def __str__(self) -> str:
        return f"{self.target} {'✓' if self.met else '✗'}"


def _throughput_target(row: Row) -> Verdict | None:
    name = row.scenario
    if name == "ingest-1":
        return Verdict("≥ 1,500/s", row.load.rate >= 1500)
    if name == "ingest-10":
        return Verdict("≥ 10,000 events/s", row.events_per_second >= 10_000)
    if name.startswith(("messages-", "v1-messages-")):
        return Verdict("≥ 1,500/s", row.load.rate >= 1500)
    if name == "send-20ms":
        return Verdict("≥ 600/s", row.load.rate >= 600)
    return None


def verdicts(row: Row, rows: Sequence[Row]) -> list[Verdict]:
    """Every target that applies to `row`."""
    found = []
    throughput = _throughput_target(row)
    if throughput is not None:
        found.append(throughput)
    if row.scenario.endswith("-1m"):
        small = next(
            (other for other in rows if other.scenario == row.scenario[: -len("1m")] + "100"),
            None,
        )
        if small is not None and small.load.p50_ms > 0:
            growth = row.load.p50_ms / small.load.p50_ms
            found.append(Verdict(f"p50 {growth:.2f}x of 100's <= 1.5x", growth <= 1.5))
    if row.scenario != "bare":
        found.append(Verdict(f"RSS < {RSS_LIMIT_MB} MB", row.usage.rss_peak_mb < RSS_LIMIT_MB))
    return found


HEADERS = (
    "scenario",
    "req/s",
    "p50 ms",
    "p99 ms",
    "server CPU %",
    "RSS MB",
    "x bare",
    "targets (issue 6)",
    "notes",
)
RIGHT_ALIGNED = {1, 2, 3, 4, 5, 6}


def _cells(row: Row, rows: Sequence[Row]) -> list[str]:
    ratio = "—" if row.ratio is None else f"{row.ratio:.2f}"
    notes = [*row.notes, *(f"PROBLEM: {problem}" for problem in row.problems)]
    if row.connections != 16:
        notes.insert(0, f"{row.connections} connections")
    return [
        row.scenario,
        f"{row.load.rate:,.0f}",
        f"{row.load.p50_ms:.1f}",
        f"{row.load.p99_ms:.1f}",
        f"{row.usage.cpu_percent:.0f}",
        f"{row.usage.rss_peak_mb:.0f}",
        ratio,
        "; ".join(str(verdict) for verdict in verdicts(row, rows)),
        "; ".join(notes),
    ]


def text_table(rows: Sequence[Row]) -> str:
    """Aligned columns for a terminal."""
    table = [list(HEADERS), *(_cells(row, rows) for row in rows)]
    widths = [max(len(line[column]) for line in table) for column in range(len(HEADERS))]

    def render(line: list[str]) -> str:
        cells = [
            cell.rjust(width) if column in RIGHT_ALIGNED else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(table[0]), rule, *(render(line) for line in table[1:])])


def markdown_table(rows: Sequence[Row]) -> str:
    """A GitHub Markdown table (paste it into bench/README.md)."""
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---:" if column in RIGHT_ALIGNED else "---" for column in range(9)) + "|",
    ]
    for row in rows:
        cells = [cell.replace("|", "\\|") for cell in _cells(row, rows)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
