"""The benchmarks' pure helpers: percentiles, parsers, generators, the results format.

Nothing here is timed and nothing starts a server or a cluster: these tests
keep the scripts under bench/ from rotting between the (long) benchmark runs.
"""

from __future__ import annotations

import json
import math
import os
import subprocess

import pytest

from bench import (
    audit_scale,
    common,
    reference_webhook,
    stages,
    stalls,
    through_apiserver,
    webhook_alone,
)
from bench.common import (
    format_section,
    hey_workers,
    machine,
    parse_hey_csv,
    parse_wrk,
    percentile,
    table,
)
from bench.reviews import deployment, review
from graceful.webhook.review import parse_review


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert percentile(list(reversed(values)), 50) == 50
    assert math.isnan(percentile([], 50))


def test_results_section_has_title_date_machine_and_lines() -> None:
    text = format_section("Webhook alone", table(["a", "b"], [[1, 2]]),
                          stamp="2026-01-01 00:00 UTC", machine_line="Linux x86_64, 2 cores")
    assert text.splitlines() == [
        "## Webhook alone (2026-01-01 00:00 UTC)", "", "Machine: Linux x86_64, 2 cores", "",
        "| a | b |", "|---|---|", "| 1 | 2 |", "",
    ]


def test_machine_line_says_cores_python_and_load() -> None:
    line = machine()
    assert f"{os.cpu_count()} cores" in line and "Python" in line and "load average" in line


WRK_OUTPUT = """\
Running 2s test @ https://127.0.0.1:4443/mutate
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    15.80ms    3.36ms  40.48ms   86.57%
    Req/Sec     2.04k   102.16     2.19k    70.00%
  Latency Distribution
     50%   15.29ms
     75%   16.39ms
     90%   18.52ms
     99%   1.02s
  4058 requests in 2.00s, 2.88MB read
Requests/sec:   2027.23
Transfer/sec:      1.44MB
"""


def test_parse_wrk_reads_rate_and_latency_in_ms() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result.requests_per_second == pytest.approx(2027.23)
    assert result.requests == 4058
    assert result.p50_ms == pytest.approx(15.29)
    assert result.p99_ms == pytest.approx(1020.0)


def test_parse_wrk_refuses_failed_requests() -> None:
    with pytest.raises(RuntimeError, match="failed responses"):
        parse_wrk(WRK_OUTPUT + "  Non-2xx or 3xx responses: 3\n")
    with pytest.raises(RuntimeError, match="socket errors"):
        parse_wrk(WRK_OUTPUT + "  Socket errors: connect 0, read 1, write 0, timeout 0\n")


def test_parse_hey_csv_gives_milliseconds_and_refuses_errors() -> None:
    header = "response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read," \
             "status-code,offset\n"
    rows = "0.0012,0.0001,0,0,0.001,0,200,0.01\n0.0030,0,0,0,0.002,0,200,0.02\n"
    assert parse_hey_csv(header + rows) == pytest.approx([1.2, 3.0])
    with pytest.raises(RuntimeError, match="500"):
        parse_hey_csv(header + "0.001,0,0,0,0,0,500,0.1\n")


def test_hey_workers_leave_each_worker_time_to_spare() -> None:
    assert hey_workers(100) == 10
    assert hey_workers(500) == 10
    assert hey_workers(1000) == 20


@pytest.mark.parametrize(("containers", "size"), webhook_alone.SHAPES)
def test_reviews_have_the_asked_containers_and_size(containers: int, size: int) -> None:
    obj = deployment(containers, target_bytes=size)
    assert len(obj["spec"]["template"]["spec"]["containers"]) == containers
    assert abs(len(json.dumps(obj)) - size) / size < 0.25
    body = json.dumps(review(obj)).encode()
    parsed = parse_review(body)  # what the webhook will read
    assert parsed.request.operation == "CREATE" and parsed.request.object == obj


def test_reviews_have_distinct_uids() -> None:
    obj = deployment(1, target_bytes=5000)
    assert review(obj)["request"]["uid"] != review(obj)["request"]["uid"]


def test_verdicts_say_by_how_much() -> None:
    assert webhook_alone.ratio_verdict(0.7, 0.6) == "met"
    assert webhook_alone.ratio_verdict(0.3, 0.6).startswith("missed by 30.0 points")
    assert webhook_alone.limit_verdict(4.0, 5.0, "ms") == "met"
    assert webhook_alone.limit_verdict(7.5, 5.0, "ms") == "missed by 2.5 ms (1.5x the limit)"


_NAME = "apiserver_admission_webhook_admission_duration_seconds"


def _series(webhook: str, samples: dict[str, float], total: float, count: float) -> list[str]:
    labels = f'name="{webhook}",operation="CREATE",rejected="false",type="admit"'
    lines = [f'{_NAME}_bucket{{{labels},le="{le}"}} {n:g}' for le, n in samples.items()]
    return [*lines, f"{_NAME}_sum{{{labels}}} {total:g}", f"{_NAME}_count{{{labels}}} {count:g}"]


METRICS = "\n".join([
    f"# HELP {_NAME} [STABLE] Admission webhook latency",
    f"# TYPE {_NAME} histogram",
    *_series("mutate.graceful.io", {"0.005": 60, "0.025": 90, "0.1": 100, "+Inf": 100}, 0.9, 100),
    *_series("other", {"0.005": 5, "+Inf": 5}, 0.01, 5),
]) + "\n"


def test_histogram_is_read_for_the_selected_webhook_only() -> None:
    found = through_apiserver.histogram(METRICS, through_apiserver.WEBHOOK_METRIC,
                                        {"name": "mutate.graceful.io", "operation": "CREATE"})
    assert found.count == 100 and found.mean == pytest.approx(0.009)
    assert found.quantile(0.5) == pytest.approx(0.005 * 50 / 60)
    assert found.quantile(0.99) == pytest.approx(0.025 + 0.075 * 9 / 10)
    assert found.bucket_of(0.99) == (0.025, 0.1)


def test_histogram_difference_is_what_happened_in_between() -> None:
    labels = {"name": "mutate.graceful.io"}
    after = through_apiserver.histogram(METRICS, through_apiserver.WEBHOOK_METRIC, labels)
    before = through_apiserver.histogram(METRICS.replace("} 100", "} 90"),
                                         through_apiserver.WEBHOOK_METRIC, labels)
    delta = after - before
    assert delta.count == 10 and delta.buckets[0.1] == 10
    assert math.isnan(through_apiserver.Histogram().quantile(0.99))


def test_a_gauge_is_read_only_without_labels() -> None:
    text = ("# TYPE process_cpu_seconds_total counter\n"
            'process_cpu_seconds_total{mode="x"} 3\nprocess_cpu_seconds_total 12.5\n')
    assert through_apiserver.gauge(text, "process_cpu_seconds_total") == 12.5
    assert through_apiserver.gauge(text, "absent_total") is None


def test_the_mode_that_answered_a_dry_run_is_told_by_the_patch_and_the_mark() -> None:
    mutated = '{"spec": {"lifecycle": {"preStop": {"sleep": {"seconds": 5}}}}}'
    assert through_apiserver.answered_by("{}", "") == "off"
    assert through_apiserver.answered_by(mutated, "Warning: graceful: budget 35s") == "graceful"
    assert through_apiserver.answered_by(
        mutated, f"Warning: graceful: budget 35s{reference_webhook.MARK}") == "reference"


def test_the_reference_answers_each_review_with_the_fixed_answer_and_its_uid() -> None:
    import asyncio  # noqa: PLC0415

    answer = {"allowed": True, "patchType": "JSONPatch", "patch": "W10=",
              "warnings": ["graceful: budget 35s", "second"]}
    app = reference_webhook.make_app(answer)
    body = json.dumps(review(deployment(1, target_bytes=1000))).encode()
    sent: list[dict[str, object]] = []

    async def call(method: str) -> None:
        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        await app({"type": "http", "method": method}, receive, send)  # type: ignore[arg-type]

    asyncio.run(call("POST"))
    start, answered = sent
    got = json.loads(answered["body"])  # type: ignore[arg-type]
    assert got["response"] == {**answer, "uid": json.loads(body)["request"]["uid"],
                               "warnings": [f"graceful: budget 35s{reference_webhook.MARK}",
                                            "second"]}
    assert (b"content-length", str(len(answered["body"])).encode()) in start["headers"]  # type: ignore[arg-type, operator]
    sent.clear()
    asyncio.run(call("GET"))
    assert sent[0]["status"] == 200


def _blocks() -> list[through_apiserver.Block]:
    Block = through_apiserver.Block
    return [Block("off", [10.0] * 99 + [50.0], 1.0, apiserver_cpu=1.0),
            Block("reference", [12.0] * 99 + [60.0], 1.25, apiserver_cpu=1.5, webhook_cpu=0.1),
            Block("graceful", [13.0] * 99 + [66.0], 1.5, apiserver_cpu=1.6, webhook_cpu=0.2)]


def test_modes_are_merged_per_create() -> None:
    blocks = [*_blocks(), through_apiserver.Block("off", [10.0] * 100, 1.0, apiserver_cpu=1.0)]
    off = through_apiserver.merged(blocks, "off")
    assert (off.creates, off.seconds, off.p50, off.p99) == (200, 2.0, 10.0, 10.0)
    assert off.apiserver_ms == pytest.approx(10.0) and off.webhook_ms is None
    graceful = through_apiserver.merged(blocks, "graceful")
    assert graceful.webhook_ms == pytest.approx(2.0) and graceful.p99 == 13.0


def test_the_report_separates_our_work_from_any_webhooks() -> None:
    blocks = _blocks()
    for block in blocks:  # p99 = the one slow create of 100 is beyond the 99th
        block.latencies_ms[-2] = block.latencies_ms[-1]
    deltas = {mode: through_apiserver.Deltas() for mode in through_apiserver.MODES}
    lines = "\n".join(through_apiserver.report(blocks, deltas, clients=20))
    assert "| graceful adds < 10% to the create p99 | +32.0% | missed by 22.0 points |" in lines
    assert "| (reference: what any webhook giving this answer adds) | +20.0% |  |" in lines
    assert "+12.0% | missed |" in lines
    assert "| API server CPU per create | 10.00 ms | 15.00 ms | 16.00 ms |" in lines


def test_audit_expectations_and_own_cpu_time() -> None:
    assert audit_scale.expected(1000) == (1000, 500, 500)
    assert audit_scale.expected(1000, broken=3) == (1000, 497, 503)
    compliant = audit_scale.deployment(0, compliant=True)
    assert compliant["spec"]["replicas"] == 0
    assert compliant["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 40
    assert "terminationGracePeriodSeconds" not in \
        audit_scale.deployment(1, compliant=False)["spec"]["template"]["spec"]
    assert audit_scale.cpu_seconds(os.getpid()) > 0  # the helper lives in bench.common
    rss, peak = audit_scale.rss_kib(os.getpid())
    assert 0 < rss <= peak


def test_the_stage_breakdown_names_every_stage_and_restores_the_app() -> None:
    from graceful.webhook import admit  # noqa: PLC0415
    from graceful.webhook import app as app_module  # noqa: PLC0415

    before = (app_module.parse_review, app_module.judge, app_module.render_answer, admit.evaluate)
    figures = stages.measure(1, 2_000, number=40)
    assert set(figures) == set(stages.STAGES)
    assert all(value >= 0 for value in figures.values())
    assert figures["app"] >= figures["parse"] and figures["app"] > 0  # parse is inside app
    assert (app_module.parse_review, app_module.judge, app_module.render_answer,
            admit.evaluate) == before


def test_the_report_has_cpu_stages_and_both_latency_targets() -> None:
    sat = webhook_alone.Saturation(1000.0, 1.0, 2.0, 10_000)
    fixed = {rate: webhook_alone.FixedRate(rate, rate, 1.0, 2.0, rate * 10)
             for rate in (500,)}
    results = [webhook_alone.ShapeResult(
        n, 5_000 * n, {"graceful": [sat], "baseline": [sat]},
        {"graceful": fixed, "baseline": fixed}, True,
        {"graceful": [300.0], "baseline": [200.0]}, [1.0, 2.0],
        dict.fromkeys(stages.STAGES, 1.0)) for n in (1, 3, 10)]
    text = "\n".join(webhook_alone.report(results, seconds=1, rounds=1, connections=1))
    assert "| 1 | 5 KB | yes | 1000 | 1000 | 100% |" in text
    assert "| 300 | 200 | 67% | 1.0-2.0 |" in text  # CPU µs/req and their ratio, load range
    assert text.count("p99 < 5 ms at 500 req/s") == 2  # 1 and 3 containers
    assert text.count("p99 < 2x baseline at 500 req/s") == 2
    assert "10 containers (reported)" in text
    assert "graceful.core: Python." in text  # the header says how the engine ran


def test_the_report_puts_the_floor_beside_every_target() -> None:
    def sat(rps: float) -> webhook_alone.Saturation:
        return webhook_alone.Saturation(rps, 1.0, 2.0, int(rps * 10))

    def fixed(p99: float) -> dict[int, webhook_alone.FixedRate]:
        return {500: webhook_alone.FixedRate(500, 500, 1.0, p99, 5_000)}

    results = [webhook_alone.ShapeResult(
        n, 5_000 * n, {"graceful": [sat(500.0)], "floor": [sat(800.0)],
                       "baseline": [sat(1000.0)]},
        {"graceful": fixed(6.0), "floor": fixed(4.5), "baseline": fixed(2.0)}, True,
        {"graceful": [400.0], "floor": [250.0], "baseline": [200.0]}, [1.0],
        dict.fromkeys(stages.STAGES, 1.0)) for n in (1, 3, 10)]
    text = "\n".join(webhook_alone.report(results, seconds=1, rounds=1, connections=1))
    # floor req/s, floor / baseline, graceful / floor, CPU, CPU ratios, p50 / p99 at 500
    assert "| 1 | 800 | 80% | 62% | 250 | 80% | 62% | 1.00 / 4.50 |" in text
    assert "| throughput >= 60% of baseline, 3 containers | 50.0% (CPU ratio 50.0%) |" in text
    assert "80.0% (CPU ratio 80.0%): met |" in text
    assert webhook_alone.ratio_verdict(0.597, 0.60) == (
        "missed by 0.3 points (needs 1.01x the throughput)")
    assert "| 4.50 ms: met |" in text  # the floor's p99 is under 5 ms...
    assert "| 2.25x: missed by 0.2 x (1.1x the limit) |" in text  # ...but not under 2x
    assert "4.50 ms, 2.2x baseline |" in text  # 10 containers: reported


def test_fixed_rate_rounds_are_summed_up_by_their_medians() -> None:
    runs = [webhook_alone.FixedRate(500, 499.0, 0.5, p99, 5_000) for p99 in (1.0, 9.0, 1.2)]
    summed = webhook_alone.median_run(runs)
    assert (summed.p99_ms, summed.p50_ms, summed.requests) == (1.2, 0.5, 15_000)
    assert webhook_alone.median_run(runs[:1]) is runs[0]


def test_servers_and_load_generators_get_cpus_of_their_own() -> None:
    assert common.placement(False) == (None, None)
    assert common.on_cpus(None) == []
    assert common.on_cpus(frozenset({2, 0}))[1:] == ["-c", "0,2"]
    servers, clients = common.placement(True)
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2:
        assert (servers, clients) == (None, None)
        return
    assert servers is not None and clients is not None
    assert len(servers) == 1 and not servers & clients and servers | clients == allowed
    # a command started with the prefix runs where it says
    shown = subprocess.run([*common.on_cpus(servers), "grep", "Cpus_allowed_list",
                            "/proc/self/status"], capture_output=True, text=True, check=True)
    assert shown.stdout.split()[-1] == str(min(servers))
    assert webhook_alone.cpu_placement(servers, clients).startswith(
        f"Servers on CPU {min(servers)}, wrk and hey on CPU")
    assert webhook_alone.cpu_placement(None, None) == (
        "Servers and load generators shared every CPU")


def test_stalls_leave_out_the_warm_up_and_list_the_worst_by_time() -> None:
    samples = [stalls.Sample(sent=t / 10, ms=1.0) for t in range(100)]
    samples[2] = stalls.Sample(sent=0.2, ms=50.0)  # in the warm-up: its own column
    samples[70] = stalls.Sample(sent=7.0, ms=9.0)
    samples[40] = stalls.Sample(sent=4.0, ms=8.0)
    summary = stalls.summarize("graceful", samples, warm_up=3.0, worst=2)
    assert summary.warm_up_max == 50.0
    assert summary.maximum == 9.0
    assert summary.percentiles[0] == 1.0
    assert [w.sent for w in summary.worst] == [4.0, 7.0]  # by time, so a period shows
    lines = stalls.report([summary], containers=3, seconds=10, interval=0.002, warm_up=3.0,
                          loads=[0.5])
    assert "| graceful | 1.00 | 1.00 | 9.00 | 9.00 | 9.00 | 50.00 |" in lines  # 70 steady
    assert "- graceful: 4.00: 8.0, 7.00: 9.0" in lines


def test_stalls_refuse_a_run_shorter_than_its_warm_up() -> None:
    with pytest.raises(ValueError, match="warm-up"):
        stalls.summarize("baseline", [stalls.Sample(0.5, 1.0)], warm_up=3.0)
