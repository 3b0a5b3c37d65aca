"""``CountingMetrics``: the smallest ``MetricsSink``, kept in memory, for a gateway without the Prometheus
sink (``gateway.metrics``) and for tests. It counts requests by route and status, errors by kind and by
fault, and the requests in flight, and renders them in the Prometheus text format."""

from __future__ import annotations

from collections import Counter

from ._hooks import RequestRecord

__all__ = ["CountingMetrics"]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class CountingMetrics:
    """Counters in memory (see the module docstring); one per gateway process."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.requests: Counter[tuple[str, int]] = Counter()
        """(route, status) -> requests finished."""
        self.errors: Counter[tuple[str, str]] = Counter()
        """(error kind, fault) -> requests that failed."""
        self.records: list[RequestRecord] = []
        """The last records (at most ``keep``), newest last: for tests and debugging."""
        self.keep = 1000

    def request_started(self, route: str) -> None:
        self.in_flight += 1

    def request_finished(self, record: RequestRecord) -> None:
        self.in_flight -= 1
        self.requests[(record.route, record.status)] += 1
        if record.error_kind is not None:
            self.errors[(record.error_kind, record.fault or "gateway")] += 1
        self.records.append(record)
        if len(self.records) > self.keep:
            del self.records[: len(self.records) - self.keep]

    def render(self) -> tuple[str, bytes]:
        lines = [
            "# HELP llmrelay_gateway_requests_total Requests answered, by route and HTTP status.",
            "# TYPE llmrelay_gateway_requests_total counter",
        ]
        for (route, status), count in sorted(self.requests.items()):
            lines.append(f'llmrelay_gateway_requests_total{{route="{_label(route)}",status="{status}"}} {count}')
        lines += [
            "# HELP llmrelay_gateway_errors_total Failed requests, by error kind and who is at fault.",
            "# TYPE llmrelay_gateway_errors_total counter",
        ]
        for (kind, fault), count in sorted(self.errors.items()):
            lines.append(f'llmrelay_gateway_errors_total{{kind="{_label(kind)}",fault="{fault}"}} {count}')
        lines += [
            "# HELP llmrelay_gateway_in_flight Requests being handled now.",
            "# TYPE llmrelay_gateway_in_flight gauge",
            f"llmrelay_gateway_in_flight {self.in_flight}",
        ]
        return "text/plain; version=0.0.4; charset=utf-8", ("\n".join(lines) + "\n").encode()
