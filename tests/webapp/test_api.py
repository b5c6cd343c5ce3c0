"""The JSON API answers from what the worker put in Redis, and 503 when Redis is gone."""

import dataclasses

import httpx

from edgelens.demo.servers import free_port
from edgelens.settings import Settings
from edgelens.wire.names import DEVICES_KEY, matches_key
from edgelens.wire.records import Match, MatchRecord


def test_devices_and_their_latest_matches(http, redis_client, make_record, set_status):
    set_status("cam-b", "offline")
    set_status("cam-a", "online", provider="CPUExecutionProvider", fps=14.5)
    redis_client.hset(DEVICES_KEY, "broken", "{not json")
    records = [make_record("cam-a", seq, "coffee", "chelsea") for seq in (1, 2, 3)]
    for record in records:
        redis_client.lpush(matches_key("cam-a"), record.to_json())
    redis_client.lpush(matches_key("cam-a"), '{"seq": "garbage"}')

    devices = http.get("/api/devices").json()
    assert [(d["device_id"], d["state"]) for d in devices] == [
        ("cam-a", "online"),
        ("cam-b", "offline"),
    ]
    assert devices[0]["provider"] == "CPUExecutionProvider"
    assert devices[0]["fps"] == 14.5, "fields the worker adds are passed through"

    answer = http.get("/api/devices/cam-a/matches", params={"limit": 3})
    assert answer.status_code == 200
    got = answer.json()
    assert [r["seq"] for r in got] == [3, 2], "newest first; the malformed record is skipped"
    assert got[0] == dataclasses.asdict(records[2])
    assert http.get("/api/devices/cam-a/matches").json()[0]["seq"] == 3
    assert http.get("/api/devices/nobody/matches").json() == []


def test_bad_device_ids_and_limits_are_refused(http):
    assert http.get("/api/devices/bad*id/matches").status_code == 422
    assert http.get("/api/devices/cam/matches", params={"limit": 0}).status_code == 422
    assert http.get("/api/devices/cam/matches", params={"limit": 5000}).status_code == 422


def test_openapi_documents_the_api_with_its_models(http):
    schema = http.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"/api/devices", "/api/devices/{device_id}/matches"} <= set(paths)
    ok = paths["/api/devices/{device_id}/matches"]["get"]["responses"]
    assert ok["200"]["content"]["application/json"]["schema"]["items"]["$ref"].endswith(
        "/MatchRecord"
    )
    assert ok["503"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorOut")
    assert (
        "text/event-stream"
        in paths["/api/devices/{device_id}/events"]["get"]["responses"]["200"]["content"]
    )
    assert not any(path.startswith("/catalog") or path == "/" for path in paths)


def test_the_api_documents_the_wire_records_themselves(http):
    """One definition: the schema is the dataclasses', with their field docstrings."""
    models = http.get("/openapi.json").json()["components"]["schemas"]
    record, match = models["MatchRecord"], models["Match"]
    assert list(record["properties"]) == [f.name for f in dataclasses.fields(MatchRecord)]
    assert list(match["properties"]) == [f.name for f in dataclasses.fields(Match)]
    assert "verification" in match["properties"]["verified"]["description"]
    assert "confirmed" in record["properties"]["stage"]["description"]
    assert models["Stage"]["enum"] == ["first", "confirmed"]
    assert models["Decision"]["enum"] == ["match", "no_match"]
    assert "seen_at" in models["RecordedStatus"]["properties"]


def test_redis_down_gives_503_json_and_pages_still_render(serve, settings, monkeypatch):
    monkeypatch.setenv("EDGELENS_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    # No featurizer given: this app loads its own in the lifespan, as `edgelens web run` does.
    with serve(Settings()) as url, httpx.Client(base_url=url, timeout=10) as http:
        for path in ("/api/devices", "/api/devices/cam/matches", "/api/devices/cam/events"):
            answer = http.get(path)
            assert answer.status_code == 503, path
            assert answer.headers["content-type"] == "application/json"
            assert "Redis at 127.0.0.1" in answer.json()["detail"]
            assert "Traceback" not in answer.text
        for path in ("/", "/devices/cam"):
            page = http.get(path)
            assert page.status_code == 200
            assert 'data-state="unavailable"' in page.text
            assert "Redis unavailable" in page.text
        assert http.get("/catalog").status_code == 200, "the catalog needs no Redis"
