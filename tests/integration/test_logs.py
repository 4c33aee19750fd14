"""CloudWatch Logs through the real clients: boto3 round trips of every
operation and its errors, and `aws logs tail --follow`."""
import os
import subprocess
import threading
import time

import botocore.exceptions
import pytest

from conftest import REGION, ACCOUNT


@pytest.fixture
def logs(berthd):
    return berthd.client("logs")


def now_ms():
    return int(time.time() * 1000)


def error_of(call, *args, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(*args, **kwargs)
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def test_groups_round_trip(logs):
    logs.create_log_group(logGroupName="/t/groups/a", tags={"team": "core"})
    logs.create_log_group(logGroupName="/t/groups/b")
    assert error_of(logs.create_log_group, logGroupName="/t/groups/a") == (
        "ResourceAlreadyExistsException", "The specified log group already exists")
    groups = logs.describe_log_groups(logGroupNamePrefix="/t/groups/")["logGroups"]
    assert [g["logGroupName"] for g in groups] == ["/t/groups/a", "/t/groups/b"]
    assert groups[0]["arn"] == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/t/groups/a:*"
    assert isinstance(groups[0]["creationTime"], int)
    page = logs.describe_log_groups(logGroupNamePrefix="/t/groups/", limit=1)
    assert len(page["logGroups"]) == 1 and page["nextToken"]
    rest = logs.describe_log_groups(logGroupNamePrefix="/t/groups/", limit=1,
                                    nextToken=page["nextToken"])
    assert [g["logGroupName"] for g in rest["logGroups"]] == ["/t/groups/b"]

    logs.put_retention_policy(logGroupName="/t/groups/a", retentionInDays=7)
    g = logs.describe_log_groups(logGroupNamePrefix="/t/groups/a")["logGroups"][0]
    assert g["retentionInDays"] == 7
    code, _ = error_of(logs.put_retention_policy, logGroupName="/t/groups/a", retentionInDays=8)
    assert code == "InvalidParameterException"
    logs.delete_retention_policy(logGroupName="/t/groups/a")
    g = logs.describe_log_groups(logGroupNamePrefix="/t/groups/a")["logGroups"][0]
    assert "retentionInDays" not in g

    assert logs.list_tags_log_group(logGroupName="/t/groups/a")["tags"] == {"team": "core"}
    logs.tag_log_group(logGroupName="/t/groups/a", tags={"env": "test"})
    logs.untag_log_group(logGroupName="/t/groups/a", tags=["team"])
    assert logs.list_tags_log_group(logGroupName="/t/groups/a")["tags"] == {"env": "test"}

    logs.delete_log_group(logGroupName="/t/groups/b")
    assert error_of(logs.delete_log_group, logGroupName="/t/groups/b") == (
        "ResourceNotFoundException", "The specified log group does not exist.")


def test_streams_and_events_round_trip(logs):
    logs.create_log_group(logGroupName="/t/events")
    logs.create_log_stream(logGroupName="/t/events", logStreamName="s1")
    logs.create_log_stream(logGroupName="/t/events", logStreamName="s2")
    assert error_of(logs.create_log_stream, logGroupName="/t/events", logStreamName="s1")[0] == \
        "ResourceAlreadyExistsException"
    assert error_of(logs.put_log_events, logGroupName="/t/events", logStreamName="nope",
                    logEvents=[{"timestamp": now_ms(), "message": "x"}]) == (
        "ResourceNotFoundException", "The specified log stream does not exist.")
    t = now_ms()
    out = logs.put_log_events(logGroupName="/t/events", logStreamName="s1", logEvents=[
        {"timestamp": t + i, "message": f"line {i} {'even' if i % 2 == 0 else 'odd'}"}
        for i in range(20)])
    assert "nextSequenceToken" in out
    logs.put_log_events(logGroupName="/t/events", logStreamName="s2",
                        logEvents=[{"timestamp": t + 5, "message": "other stream even"}])

    head = logs.get_log_events(logGroupName="/t/events", logStreamName="s1",
                               startFromHead=True, limit=15)
    assert [e["message"] for e in head["events"]][:2] == ["line 0 even", "line 1 odd"]
    assert len(head["events"]) == 15
    nxt = logs.get_log_events(logGroupName="/t/events", logStreamName="s1",
                              nextToken=head["nextForwardToken"])
    assert [e["message"] for e in nxt["events"]] == [f"line {i} {'even' if i % 2 == 0 else 'odd'}"
                                                     for i in range(15, 20)]
    end = logs.get_log_events(logGroupName="/t/events", logStreamName="s1",
                              nextToken=nxt["nextForwardToken"])
    assert end["events"] == [] and end["nextForwardToken"] == nxt["nextForwardToken"]

    f = logs.filter_log_events(logGroupName="/t/events", filterPattern="even")
    msgs = [e["message"] for e in f["events"]]
    assert len(msgs) == 11 and "other stream even" in msgs
    assert all("even" in m for m in msgs)
    f = logs.filter_log_events(logGroupName="/t/events", logStreamNames=["s1"],
                               filterPattern='"line 3"')
    assert [e["message"] for e in f["events"]] == ["line 3 odd"]
    assert f["events"][0]["logStreamName"] == "s1" and f["events"][0]["eventId"]

    streams = logs.describe_log_streams(logGroupName="/t/events")["logStreams"]
    assert [s["logStreamName"] for s in streams] == ["s1", "s2"]
    assert streams[0]["lastEventTimestamp"] == t + 19
    by_time = logs.describe_log_streams(logGroupName="/t/events", orderBy="LastEventTime",
                                        descending=True)["logStreams"]
    assert [s["logStreamName"] for s in by_time] == ["s1", "s2"]

    logs.delete_log_stream(logGroupName="/t/events", logStreamName="s2")
    assert [s["logStreamName"] for s in logs.describe_log_streams(
        logGroupName="/t/events")["logStreams"]] == ["s1"]


def test_put_log_events_rejections(logs):
    logs.create_log_group(logGroupName="/t/reject")
    logs.create_log_stream(logGroupName="/t/reject", logStreamName="s")
    t = now_ms()
    old = t - 15 * 24 * 3600 * 1000
    out = logs.put_log_events(logGroupName="/t/reject", logStreamName="s", logEvents=[
        {"timestamp": old, "message": "too old"}, {"timestamp": old + 1, "message": "too old"}])
    assert "tooOldLogEventEndIndex" in out["rejectedLogEventsInfo"]
    code, msg = error_of(logs.put_log_events, logGroupName="/t/reject", logStreamName="s",
                         logEvents=[{"timestamp": old, "message": "x"},
                                    {"timestamp": t, "message": "y"}])
    assert code == "InvalidParameterException"
    assert msg == ("The batch of log events in a single PutLogEvents request cannot span more "
                   "than 24 hours.")
    logs.put_log_events(logGroupName="/t/reject", logStreamName="s",
                        logEvents=[{"timestamp": t, "message": "fine"}])
    code, msg = error_of(logs.put_log_events, logGroupName="/t/reject", logStreamName="s",
                         logEvents=[{"timestamp": t + 10, "message": "b"},
                                    {"timestamp": t, "message": "a"}])
    assert code == "InvalidParameterException"
    assert msg == "Log events in a single PutLogEvents request must be in chronological order."
    ev = logs.get_log_events(logGroupName="/t/reject", logStreamName="s",
                             startFromHead=True)["events"]
    assert [e["message"] for e in ev] == ["fine"]


def test_aws_logs_tail_follow_shows_new_lines_quickly(berthd, logs):
    logs.create_log_group(logGroupName="/t/tail")
    logs.create_log_stream(logGroupName="/t/tail", logStreamName="app")
    proc = subprocess.Popen(["/usr/bin/aws", "--endpoint-url", berthd.endpoint, "logs", "tail",
                             "/t/tail", "--follow", "--format", "short"],
                            env=berthd.cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    seen = {}

    def read():
        for line in proc.stdout:
            seen[line.strip().split(" ", 1)[-1]] = time.time()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        time.sleep(2)  # let the CLI make its first call
        sent = time.time()
        logs.put_log_events(logGroupName="/t/tail", logStreamName="app",
                            logEvents=[{"timestamp": now_ms(), "message": "tail-me-now"}])
        deadline = time.time() + 15
        while "tail-me-now" not in seen and time.time() < deadline:
            time.sleep(0.05)
        assert "tail-me-now" in seen, seen
        # awscli polls every 5 s; the line shows up on its next poll at the latest.
        assert seen["tail-me-now"] - sent < 6.5
    finally:
        proc.terminate()
        proc.wait(timeout=10)
