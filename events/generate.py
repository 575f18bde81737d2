#!/usr/bin/env python3
"""Regenerates the sample Lambda events in this folder from a real recorded X API v2 search page, and the
day-before page of each bundled rule (events/x-api/<rule>.day-before.json).

Deterministic: the same input gives byte-identical files. Run from the repository root:
    python3 events/generate.py
Each event's records are tweet envelopes (see the README's message contract) as the ingest function
produces them, plus the malformed cases the process function must quarantine.
"""
import base64
import json
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = json.loads((ROOT / "events/x-api/brexit.json").read_text())
USERS = {u["id"]: u for u in PAGE["includes"]["users"]}
TOPIC = "tweets"
BASE_TS = 1632328649000  # 2021-09-22T16:37:29Z, near the page's created_at values
ARN = "arn:aws:kafka:us-east-1:123456789012:cluster/tweetlake/abcd1234-ab12-cd34-ef56-abcdef123456-1"


def envelope(tweet, rules=("brexit",)):
    author = USERS.get(tweet.get("author_id"))
    msg = {
        "v": 1,
        "tweet": tweet,
        "rules": [{"id": str(1000 + i), "tag": t} for i, t in enumerate(rules)],
        "ingest": {"source": "recent_search", "run_id": "run-0001", "fetched_at": "2021-09-22T16:40:00Z"},
    }
    if author:
        msg["author"] = {"id": author["id"], "username": author["username"], "name": author["name"]}
    return json.dumps(msg, separators=(",", ":")).encode()


def signed(bs):
    return [b - 256 if b > 127 else b for b in bs]


def record(partition, offset, value, key=None, headers=True, raw_value=None):
    r = {
        "topic": TOPIC,
        "partition": partition,
        "offset": offset,
        "timestamp": BASE_TS + offset * 1000 + 7,
        "timestampType": "CREATE_TIME",
    }
    if key is not None:
        r["key"] = base64.b64encode(key.encode()).decode()
    if raw_value is not None:
        r["value"] = raw_value
    elif value is not None:
        r["value"] = base64.b64encode(value).decode()
    if headers:
        r["headers"] = [
            {"tweetlake-source": signed(b"recent_search")},
            {"tweetlake-envelope-version": signed(b"1")},
            {"tweetlake-run-id": signed("run-0001-é".encode())},  # bytes above 127
        ]
    return r


def event(source, records):
    grouped = {}
    for r in records:
        grouped.setdefault(f"{r['topic']}-{r['partition']}", []).append(r)
    ev = {"eventSource": source, "bootstrapServers": "b-1.tweetlake.kafka.us-east-1.amazonaws.com:9098", "records": grouped}
    if source == "aws:kafka":
        ev["eventSourceArn"] = ARN
    return ev


def good_batch():
    """20 tweets over two partitions, one in-batch duplicate, one re-send at a later offset, 6 malformed."""
    tweets = PAGE["data"][:20]
    recs, offs = [], {0: 100, 1: 200}
    for i, t in enumerate(tweets):
        p = i % 2
        recs.append(record(p, offs[p], envelope(t), key=t["id"]))
        offs[p] += 1
    dup = tweets[0]  # partition 0: the same tweet again later in the batch
    recs.append(record(0, offs[0], envelope(dup), key=dup["id"]))
    offs[0] += 1
    bad = [
        (None, "value_present"),
        (b'{"v":1,"tweet":', "json"),
        (json.dumps({"v": 99, "tweet": tweets[0]}).encode(), "envelope_version"),
        (json.dumps({"v": 1, "tweet": {"id": "1", "text": "no date"}}).encode(), "required_fields"),
        (json.dumps({"v": 1, "tweet": {"id": "x1", "text": "t", "created_at": "2021-09-22T16:37:29Z"}}).encode(), "id_format"),
        (json.dumps({"v": 1, "tweet": {"id": "2", "text": "t", "created_at": "22/09/2021"}}).encode(), "created_at"),
    ]
    for value, _rule in bad:
        recs.append(record(1, offs[1], value, key=None, headers=False))
        offs[1] += 1
    return recs


def hostile_batch(first_offset):
    """Records no Kafka client sends, each quarantined by the named rule, around two good tweets that land.
    Partition 0, offsets from `first_offset` (after the poison batch). Returns (records, rules in offset order)."""
    tweets = PAGE["data"][20:22]
    cases = [
        (lambda r: r["headers"].__setitem__(0, {"tweetlake-source": None}), "decodable"),
        (lambda r: r["headers"].__setitem__(0, {"tweetlake-source": [104, 300]}), "decodable"),
        (lambda r: r["headers"].__setitem__(0, {"tweetlake-source": {"not": "bytes"}}), "decodable"),
        (lambda r: r.__setitem__("value", None), "value_present"),
        (lambda r: r.__setitem__("value", {"not": "base64"}), "decodable"),
        (lambda r: r.__setitem__("value", 42), "decodable"),
        (lambda r: r.__setitem__("timestamp", 1e300), "kafka_timestamp"),
        (lambda r: r.__setitem__("timestamp", 9223372036854775807), "kafka_timestamp"),
        (lambda r: r.__setitem__("timestamp", 10**16), "kafka_timestamp"),
        (lambda r: r.__setitem__("timestamp", 4102444800000), "kafka_timestamp"),  # 2100-01-01
        (lambda r: r.__setitem__("timestamp", "yesterday"), "decodable"),
        (lambda r: r.__setitem__("partition", -3), "decodable"),
    ]
    recs, rules, off = [], [], first_offset
    recs.append(record(0, off, envelope(tweets[0]), key=tweets[0]["id"]))
    off += 1
    for i, (spoil, rule) in enumerate(cases):
        t = dict(PAGE["data"][22 + i], id=str(1440000000000000000 + i))
        r = record(0, off, envelope(t), key=t["id"])
        spoil(r)
        recs.append(r)
        rules.append(rule)
        off += 1
    recs.append(record(0, off, envelope(tweets[1]), key=tweets[1]["id"]))
    return recs, rules


def day_before(rule):
    """The page a recent search for `#rule` would have returned in part for the day before the recorded
    page: the page's own expanded referenced posts (real recorded posts, with their authors from the
    page's `includes.users`) that carry the hashtag and were posted in the 24 hours before its oldest
    post, each once, newest first, as one last page. The bundled sample then spans a day, so the report's
    over-time charts have hours to draw."""
    page = json.loads((ROOT / f"events/x-api/{rule}.json").read_text())
    on_page = {t["id"] for t in page["data"]}
    oldest = min(t["created_at"] for t in page["data"])
    since = datetime.fromisoformat(oldest.replace("Z", "+00:00")) - timedelta(hours=24)
    posts = [
        t
        for t in page["includes"]["tweets"]
        if t["id"] not in on_page
        and f"#{rule}" in t["text"].lower()
        and since <= datetime.fromisoformat(t["created_at"].replace("Z", "+00:00")) < datetime.fromisoformat(oldest.replace("Z", "+00:00"))
    ]
    # The recorded includes repeat a post when two posts on the page refer to it; a page lists it once.
    posts = sorted({t["id"]: t for t in reversed(posts)}.values(), key=lambda t: int(t["id"]), reverse=True)
    authors = {t["author_id"] for t in posts}
    users = [u for u in page["includes"]["users"] if u["id"] in authors]
    return {
        "data": posts,
        "includes": {"users": users},
        "meta": {"newest_id": posts[0]["id"], "oldest_id": posts[-1]["id"], "result_count": len(posts)},
    }


def main():
    for rule in ("brexit", "kpop"):
        (ROOT / f"events/x-api/{rule}.day-before.json").write_text(json.dumps(day_before(rule)) + "\n")
    recs = good_batch()
    (ROOT / "events/msk-batch.json").write_text(json.dumps(event("aws:kafka", recs), indent=1) + "\n")
    (ROOT / "events/self-managed-batch.json").write_text(json.dumps(event("SelfManagedKafka", recs), indent=1) + "\n")
    # Partition 0 continues where the good batch ends (offset 110), as the mapping would deliver it.
    poison = [record(0, 111 + i, None, raw_value=v, headers=False) for i, v in enumerate(["%%%not-base64", base64.b64encode(b"\xff\xfe\xfd").decode(), base64.b64encode(b"[1,2,3]").decode()])]
    (ROOT / "events/poison-batch.json").write_text(json.dumps(event("aws:kafka", poison), indent=1) + "\n")
    hostile, _rules = hostile_batch(114)
    (ROOT / "events/hostile-batch.json").write_text(json.dumps(event("aws:kafka", hostile), indent=1) + "\n")


if __name__ == "__main__":
    main()
