"""The proof's arithmetic: journals and request outcomes in, the counts people read out.

Pure functions, no I/O, so that what "lost" and "duplicated" mean is fixed
by tests and not by whichever script reads the files.

Why these definitions:

- a message is **lost** when RabbitMQ confirmed it to the publisher and no
  handler ever finished it, once the queue is empty: with ``ack_first`` the
  broker forgot it at delivery and the Pod died with it;
- a message is **duplicated** when a handler *started* it more than once:
  its side effects (a charge, an email, a row) happened, at least in part,
  twice. RabbitMQ's ``redelivered`` flag is not the measure: a message that
  sat in a stopping consumer's prefetch buffer comes back flagged although
  no handler ever saw it (FastStream stops taking deliveries on SIGTERM and
  the broker requeues what it had sent ahead);
- a request **failed** when the client got no complete 2xx answer: refused,
  reset, timed out, a 5xx, or anything else (counted as ``other``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["ok", "refused", "reset", "timeout", "5xx", "other"]
FAILURE_KINDS: tuple[Kind, ...] = ("refused", "reset", "timeout", "5xx", "other")


@dataclass(frozen=True)
class Event:
    """One line of a Pod's journal."""

    t: float
    pod: str
    event: str
    id: str = ""
    redelivered: bool = False


def parse_journal(lines: Iterable[str]) -> list[Event]:
    """Events from JSON lines; a torn last line (the Pod was killed mid-write) is skipped."""
    events: list[Event] = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        try:
            data: Any = json.loads(line)
        except ValueError:
            continue
        if not isinstance(data, dict) or "event" not in data:
            continue
        events.append(Event(t=float(data.get("t", 0.0)), pod=str(data.get("pod", "")),
                            event=str(data["event"]), id=str(data.get("id", "")),
                            redelivered=bool(data.get("redelivered", False))))
    events.sort(key=lambda e: e.t)
    return events


@dataclass(frozen=True)
class MessageTally:
    """What happened to the messages of one run."""

    published: int
    acked: int
    processed: int
    """Messages whose handler finished at least once."""
    duplicated: int
    """Messages whose handler started more than once."""
    lost: int
    redelivered: int
    """Deliveries flagged ``redelivered`` by RabbitMQ (informative, see the module doc)."""
    lost_ids: tuple[str, ...] = ()
    duplicated_ids: tuple[str, ...] = ()


def tally_messages(published: Sequence[str], events: Iterable[Event]) -> MessageTally:
    """Count lost and duplicated messages among ``published`` (ids of other runs are ignored)."""
    wanted = set(published)
    starts: Counter[str] = Counter()
    finishes: Counter[str] = Counter()
    acks: set[str] = set()
    redelivered = 0
    for event in events:
        if event.id not in wanted:
            continue
        if event.event == "start":
            starts[event.id] += 1
            redelivered += event.redelivered
        elif event.event == "finish":
            finishes[event.id] += 1
        elif event.event == "ack":
            acks.add(event.id)
    lost = tuple(sorted(i for i in wanted if finishes[i] == 0))
    duplicated = tuple(sorted(i for i in wanted if starts[i] > 1))
    return MessageTally(published=len(wanted), acked=len(acks),
                        processed=sum(1 for i in wanted if finishes[i] > 0),
                        duplicated=len(duplicated), lost=len(lost), redelivered=redelivered,
                        lost_ids=lost, duplicated_ids=duplicated)


def unfinished_in(events: Iterable[Event], pods: Iterable[str]) -> set[str]:
    """Ids a handler in one of ``pods`` started and has not finished (still working)."""
    alive = set(pods)
    open_: dict[tuple[str, str], int] = Counter()
    for event in events:
        if event.pod not in alive or not event.id:
            continue
        if event.event == "start":
            open_[(event.pod, event.id)] += 1
        elif event.event == "finish":
            open_[(event.pod, event.id)] -= 1
    return {ident for (_, ident), count in open_.items() if count > 0}


@dataclass(frozen=True)
class Outcome:
    """One request of the load generator."""

    t: float
    """Wall-clock time the request was started."""
    kind: Kind
    latency: float
    pod: str = ""
    detail: str = ""

    def to_json(self) -> str:
        return json.dumps({"t": self.t, "kind": self.kind, "latency": round(self.latency, 4),
                           "pod": self.pod, "detail": self.detail}, separators=(",", ":"))


def parse_outcomes(lines: Iterable[str]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        try:
            data = json.loads(line)
            kind: Kind = data["kind"] if data["kind"] in ("ok", *FAILURE_KINDS) else "other"
            outcomes.append(Outcome(float(data["t"]), kind, float(data.get("latency", 0.0)),
                                    str(data.get("pod", "")), str(data.get("detail", ""))))
        except (ValueError, KeyError, TypeError):
            continue
    return outcomes


def classify_error(error: BaseException) -> Kind:
    """The failure kind of an exception raised while connecting, sending or reading."""
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(error, TimeoutError):  # asyncio.TimeoutError is TimeoutError since 3.11
        return "timeout"
    if isinstance(error, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "reset"
    if type(error).__name__ == "IncompleteReadError":
        return "reset"  # the peer closed before a whole answer arrived
    return "other"


def classify_status(status: int) -> Kind:
    """``ok`` for 2xx, ``5xx`` for server errors, ``other`` for anything else."""
    if 200 <= status < 300:
        return "ok"
    if 500 <= status < 600:
        return "5xx"
    return "other"


@dataclass(frozen=True)
class RequestTally:
    sent: int
    failed: int
    by_kind: Mapping[str, int] = field(default_factory=dict)
    failure_times: tuple[float, ...] = ()


def tally_requests(outcomes: Iterable[Outcome]) -> RequestTally:
    sent = 0
    by_kind: Counter[str] = Counter()
    times: list[float] = []
    for outcome in outcomes:
        sent += 1
        if outcome.kind != "ok":
            by_kind[outcome.kind] += 1
            times.append(outcome.t)
    return RequestTally(sent=sent, failed=sum(by_kind.values()),
                        by_kind={k: by_kind[k] for k in FAILURE_KINDS if by_kind[k]},
                        failure_times=tuple(sorted(times)))


@dataclass(frozen=True)
class Totals:
    """One mode's figures, summed over its rollouts."""

    lost: int = 0
    duplicated: int = 0
    messages: int = 0
    failed: int = 0
    requests: int = 0

    def __add__(self, other: Totals) -> Totals:
        return Totals(self.lost + other.lost, self.duplicated + other.duplicated,
                      self.messages + other.messages, self.failed + other.failed,
                      self.requests + other.requests)

    @classmethod
    def of(cls, messages: MessageTally | None, requests: RequestTally | None) -> Totals:
        return cls(lost=messages.lost if messages else 0,
                   duplicated=messages.duplicated if messages else 0,
                   messages=messages.published if messages else 0,
                   failed=requests.failed if requests else 0,
                   requests=requests.sent if requests else 0)

    def clause(self) -> str:
        return (f"{self.lost} lost, {self.duplicated} duplicated of {self.messages} messages,"
                f" {self.failed} failed of {self.requests} requests")


@dataclass(frozen=True)
class ModeFigures:
    """One mode's figures summed over its rollouts: the row of a side-by-side table.

    The bench's Markdown table and the demo's table for a person both read
    these, so that "acked" or "failed" cannot mean one thing in one and
    another in the other.
    """

    published: int = 0
    acked: int = 0
    duplicated: int = 0
    lost: int = 0
    sent: int = 0
    failed: int = 0
    by_kind: Mapping[str, int] = field(default_factory=dict)
    has_messages: bool = False
    has_requests: bool = False

    @classmethod
    def of(cls, messages: Iterable[MessageTally | None],
           requests: Iterable[RequestTally | None]) -> ModeFigures:
        tallies = [m for m in messages if m is not None]
        answered = [q for q in requests if q is not None]
        kinds: Counter[str] = Counter()
        for q in answered:
            kinds.update(q.by_kind)
        return cls(published=sum(m.published for m in tallies),
                   acked=sum(m.acked for m in tallies),
                   duplicated=sum(m.duplicated for m in tallies),
                   lost=sum(m.lost for m in tallies),
                   sent=sum(q.sent for q in answered), failed=sum(q.failed for q in answered),
                   by_kind={k: kinds[k] for k in sorted(kinds)},
                   has_messages=bool(tallies), has_requests=bool(answered))

    def failures(self) -> str:
        """``refused 17, reset 6``, or ``-`` when nothing failed."""
        return ", ".join(f"{k} {v}" for k, v in self.by_kind.items()) or "-"


def final_line(with_policy: Totals, without: Totals) -> str:
    """The one line ``bench.rollout_loss`` ends with."""
    return f"with policy: {with_policy.clause()}; without: {without.clause()}"


@dataclass
class Stop:
    """How one old Pod stopped, in wall-clock seconds (the Pods share this machine's clock)."""

    pod: str
    workload: str
    grace: int | None
    pre_stop: int | None
    deleted: float | None = None
    sigterm: float | None = None
    drained: float | None = None
    exited: float | None = None
    exit_code: int | None = None

    def relative(self) -> dict[str, float | None]:
        """Each event in seconds after the delete."""
        base = self.deleted
        return {k: (None if v is None or base is None else round(v - base, 2))
                for k, v in (("sigterm", self.sigterm), ("drained", self.drained),
                             ("exited", self.exited))}


def _segments(stop: Stop) -> list[tuple[str, str, float, float]]:
    """(fill, label, start, end) in seconds after the delete, for the events that happened."""
    rel = stop.relative()
    segments: list[tuple[str, str, float, float]] = []
    cursor = 0.0
    sigterm, drained, exited = rel["sigterm"], rel["drained"], rel["exited"]
    if sigterm is not None and sigterm > 0.05:
        label = f"preStop {stop.pre_stop}s" if stop.pre_stop else "endpoints drop"
        segments.append(("-", label, 0.0, sigterm))
        cursor = sigterm
    end_of_drain = drained if drained is not None else exited
    if end_of_drain is not None and end_of_drain > cursor:
        killed = stop.exit_code == 137
        segments.append(("x" if killed else "=", "drain (killed)" if killed else "drain",
                         cursor, end_of_drain))
        cursor = end_of_drain
    if exited is not None and exited > cursor + 0.01:
        segments.append((".", "exit", cursor, exited))
    return segments


def telling_stop(stops: Sequence[Stop]) -> Stop | None:
    """The one old Pod to draw: a consumer (its drain is the long one), a killed one if any.

    A killed consumer is what the policy prevents; when none was killed the
    first consumer stands for the others.
    """
    ranked = sorted(stops, key=lambda s: (s.workload != "consumer", s.exit_code != 137))
    return ranked[0] if ranked else None


def _put(line: list[str], column: int, text: str) -> None:
    while len(line) < column + len(text):
        line.append(" ")
    line[column:column + len(text)] = list(text)


def draw_stop(stop: Stop, mode: str, width: int = 72, indent: str = "  ") -> list[str]:
    """One old Pod's measured stop, drawn as ``graceful explain`` draws the planned one.

    The same three lines (times, the bar with ``-`` preStop, ``=`` drain,
    ``x`` killed, the ``^`` events under it), then each event with its time.
    Every number was measured, none planned: the delete as the watch saw it,
    SIGTERM and the end of the drain as the app journaled them, the exit
    code from the Pod's status.
    """
    grace = "unset" if stop.grace is None else f"{stop.grace}s"
    code = "?" if stop.exit_code is None else str(stop.exit_code)
    head = f"{stop.workload} Pod {stop.pod} ({mode}, terminationGracePeriodSeconds {grace}):" \
        f" exit {code}"
    if stop.deleted is None:
        return [head, indent + "(the delete was not seen)"]
    segments = _segments(stop)
    lines = [head]
    rel = stop.relative()
    if segments:
        minimum = [len(label) + 4 for _, label, _, _ in segments]
        spare = max(width - sum(minimum), 0)
        total = sum(end - start for _, _, start, end in segments) or 1.0
        widths = [m + int(spare * (end - start) / total)
                  for m, (_, _, start, end) in zip(minimum, segments, strict=True)]
        times, bar = "", ""
        for w, (fill, label, start, _) in zip(widths, segments, strict=True):
            times += f"{start:.1f}s".ljust(w)
            bar += "|" + f" {label} ".center(w - 1, fill)
        times += f"{segments[-1][3]:.1f}s"
        events: list[str] = []
        sigterm = rel["sigterm"]
        if sigterm is not None and sigterm > 0.05:
            _put(events, 0, "^delete")
            _put(events, max(widths[0], len(events) + 1), "^SIGTERM")
        else:
            _put(events, 0, "^delete+SIGTERM")
        end = "^SIGKILL: exit 137" if stop.exit_code == 137 else f"^exit {code}"
        _put(events, max(sum(widths), len(events) + 1), end)
        lines += [indent + times, indent + bar + "|", indent + "".join(events)]
    events_at = [("delete (the watch sees it)", 0.0)]
    if stop.pre_stop:
        events_at.append((f"preStop sleep {stop.pre_stop}s starts", 0.0))
    for key, label in (("sigterm", "SIGTERM (the app journals it)"),
                       ("drained", "drained: in-flight work done"),
                       ("exited", f"exit {code}")):
        value = rel[key]
        if value is not None:
            events_at.append((label, value))
    if stop.grace is not None:
        events_at.append((f"SIGKILL due (terminationGracePeriodSeconds {stop.grace}s)",
                          float(stop.grace)))
    lines += [f"{indent}+{t:6.2f}s  {label}"
              for label, t in sorted(events_at, key=lambda e: e[1])]
    return lines
