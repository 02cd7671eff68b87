"""``--header`` reaches every client the same way: the raw client (parity, sequential), wrk's
script and vegeta's targets (the load lab); a ``Host`` given replaces the client's own."""

from __future__ import annotations

import base64
import json

from fiber_endpoints.bench import client, vegeta, wrk

HEADERS = {"Host": "lgbm.default.example.com", "Authorization": "Bearer a]]b"}


def test_the_raw_client_sends_the_given_host_instead_of_its_own() -> None:
    raw = client.RawClient("http://127.0.0.1:9")
    request = raw.prepare("POST", "/v2/models/m/infer", b"{}", HEADERS).decode()
    head = request.split("\r\n\r\n")[0].split("\r\n")
    assert [h for h in head if h.lower().startswith("host:")] == ["Host: lgbm.default.example.com"]
    assert "Authorization: Bearer a]]b" in head
    plain = raw.prepare("POST", "/x", b"{}").decode()
    assert "Host: 127.0.0.1:9\r\n" in plain


def test_an_https_url_makes_a_tls_client_on_port_443_by_default() -> None:
    raw = client.RawClient("https://models.example.com/")
    assert raw.tls and raw.port == 443
    assert not client.RawClient("http://h:8000").tls


def test_wrk_script_carries_every_header_as_a_lua_long_string() -> None:
    script = wrk.lua_script("/v2/models/m/infer", [b'{"inputs":[]}'], HEADERS)
    assert "[ [=[Host]=] ] = [=[lgbm.default.example.com]=]" in script
    # A value holding "]]" cannot end a level-1 long string early.
    assert "[=[Bearer a]]b]=]" in script
    assert "[=[Content-Type]=]" in script


def test_vegeta_targets_carry_every_header() -> None:
    line = json.loads(vegeta.targets("https://h:443", "/p", [b"{}"], HEADERS).splitlines()[0])
    assert line["url"] == "https://h:443/p"
    assert line["header"] == {
        "Content-Type": ["application/json"],
        "Host": ["lgbm.default.example.com"],
        "Authorization": ["Bearer a]]b"],
    }
    assert base64.b64decode(line["body"]) == b"{}"
