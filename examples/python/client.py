#!/usr/bin/env python3
"""A ws-service client in Python: runs the protocol and checks every answer.

    python3 examples/python/client.py ws://localhost:8080/ws
    python3 examples/python/client.py --token "$AUTH_TOKEN" ws://localhost:8080/ws
    python3 examples/python/client.py URL_A URL_B     # publish on A, expect delivery on A and B

Steps: ping, echo, an unknown type, subscribe (one subscriber connection per URL), publish
from a separate connection to the first URL with a fresh W3C traceparent, the delivery on every
subscriber in that trace, unsubscribe. Each step prints one JSON line ({"step": ..., "ok": ...});
the first answer that differs from the protocol (docs/protocol.md) prints what was expected and
what came, and the script exits 1. A refused or failed connection also exits 1.

Uses only the `websockets` package as Debian 12 ships it (python3-websockets, 10.4): its
asyncio client, `websockets.connect`.
"""

import argparse
import asyncio
import base64
import json
import re
import secrets
import sys

import websockets

PROTOCOL = "ws-service.v1"
BEARER_PREFIX = "ws-service.bearer."
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


class Mismatch(Exception):
    """An answer the protocol does not allow; the script reports it and exits 1."""

    def __init__(self, step, expected, got):
        super().__init__(step)
        self.step, self.expected, self.got = step, expected, got


def emit(**fields):
    print(json.dumps(fields), flush=True)


def bearer_offer(token):
    """The subprotocol offer that carries the token: base64url without padding."""
    encoded = base64.urlsafe_b64encode(token.encode("utf-8")).decode("ascii").rstrip("=")
    return BEARER_PREFIX + encoded


def new_traceparent():
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


class Peer:
    """One connection: replies are matched to requests by id; deliveries are kept apart."""

    def __init__(self, ws, url, timeout):
        self.ws, self.url, self.timeout = ws, url, timeout
        self.deliveries = []
        self._next = 0

    def next_id(self, prefix):
        self._next += 1
        return f"{prefix}-{self._next}"

    async def _receive(self, step):
        try:
            raw = await asyncio.wait_for(self.ws.recv(), self.timeout)
        except asyncio.TimeoutError:
            raise Mismatch(step, f"an answer within {self.timeout} s", None) from None
        except websockets.ConnectionClosed as closed:
            raise Mismatch(step, "an answer", f"connection closed ({closed.code})") from None
        if not isinstance(raw, str):
            raise Mismatch(step, "a text frame", f"{len(raw)} binary bytes")
        try:
            return json.loads(raw)
        except ValueError:
            raise Mismatch(step, "JSON", raw) from None

    async def request(self, step, message):
        """Sends `message` and returns the frame answering its id; deliveries met on the way are kept."""
        await self.ws.send(json.dumps(message))
        while True:
            frame = await self._receive(step)
            if frame.get("type") == "message":
                self.deliveries.append(frame)
            elif frame.get("id") == message["id"]:
                return frame
            else:
                raise Mismatch(step, f"the answer to id {message['id']!r}", frame)

    async def delivery(self, step):
        if self.deliveries:
            return self.deliveries.pop(0)
        while True:
            frame = await self._receive(step)
            if frame.get("type") == "message":
                return frame
            raise Mismatch(step, "a message delivery", frame)


def expect(step, got, expected):
    if got != expected:
        raise Mismatch(step, expected, got)


async def open_peer(url, role, args):
    offers = [PROTOCOL]
    headers = {}
    if args.token is not None and args.auth == "subprotocol":
        offers.append(bearer_offer(args.token))
    elif args.token is not None:
        headers["Authorization"] = f"Bearer {args.token}"
    try:
        ws = await websockets.connect(
            url,
            subprotocols=offers,
            extra_headers=headers,
            open_timeout=args.timeout,
            compression=None,
        )
    except websockets.InvalidStatusCode as refused:
        emit(step="connect", ok=False, url=url, role=role, status=refused.status_code)
        raise SystemExit(1) from None
    except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as err:
        emit(step="connect", ok=False, url=url, role=role, error=f"{type(err).__name__}: {err}")
        raise SystemExit(1) from None
    expect("connect", ws.subprotocol, PROTOCOL)
    emit(step="connect", ok=True, url=url, role=role, subprotocol=ws.subprotocol)
    return Peer(ws, url, args.timeout)


async def run(args):
    publisher = await open_peer(args.urls[0], "publisher", args)
    subscribers = [await open_peer(url, "subscriber", args) for url in args.urls]
    peers = [publisher, *subscribers]
    try:
        ping_id = publisher.next_id("ping")
        expect("ping", await publisher.request("ping", {"type": "ping", "id": ping_id}), {"type": "pong", "id": ping_id})
        emit(step="ping", ok=True)

        data = {"text": "héllo ✓", "numbers": [1, 2.5, -3, None, True], "nested": {"a": {"b": []}}}
        echo_id = publisher.next_id("echo")
        expect("echo", await publisher.request("echo", {"type": "echo", "id": echo_id, "data": data}), {"type": "echo", "id": echo_id, "data": data})
        emit(step="echo", ok=True)

        unknown_id = publisher.next_id("unknown")
        error = await publisher.request("unknown_type", {"type": "no-such-type", "id": unknown_id})
        expect("unknown_type", (error.get("type"), error.get("id"), error.get("code")), ("error", unknown_id, "unknown_type"))
        emit(step="unknown_type", ok=True)

        for subscriber in subscribers:
            sub_id = subscriber.next_id("sub")
            reply = await subscriber.request("subscribe", {"type": "subscribe", "id": sub_id, "channel": args.channel})
            expect("subscribe", reply, {"type": "subscribed", "id": sub_id, "channel": args.channel})
            emit(step="subscribe", ok=True, url=subscriber.url)

        trace_id, span_id, traceparent = new_traceparent()
        payload = {"from": "python", "nonce": secrets.token_hex(4)}
        pub_id = publisher.next_id("pub")
        reply = await publisher.request(
            "publish", {"type": "publish", "id": pub_id, "channel": args.channel, "data": payload, "traceparent": traceparent}
        )
        expect("publish", reply, {"type": "published", "id": pub_id, "channel": args.channel})
        emit(step="publish", ok=True, url=publisher.url, trace_id=trace_id, span_id=span_id)

        for subscriber in subscribers:
            frame = await subscriber.delivery("deliver")
            match = TRACEPARENT.match(str(frame.get("traceparent")))
            expect("deliver", {k: v for k, v in frame.items() if k != "traceparent"}, {"type": "message", "channel": args.channel, "data": payload})
            # The delivery names the server's span, in the trace this script started.
            expect("deliver", match is not None and match.group(1), trace_id)
            emit(step="deliver", ok=True, url=subscriber.url, trace_id=match.group(1), span_id=match.group(2))

        for subscriber in subscribers:
            unsub_id = subscriber.next_id("unsub")
            reply = await subscriber.request("unsubscribe", {"type": "unsubscribe", "id": unsub_id, "channel": args.channel})
            expect("unsubscribe", reply, {"type": "unsubscribed", "id": unsub_id, "channel": args.channel})
            emit(step="unsubscribe", ok=True, url=subscriber.url)
    finally:
        for peer in peers:
            await peer.ws.close(1000)
    emit(step="done", ok=True)


def main():
    parser = argparse.ArgumentParser(description="Run the ws-service protocol and check every answer.")
    parser.add_argument("urls", metavar="URL", nargs="+", help="service WebSocket URLs; the first also publishes")
    parser.add_argument("--token", help="AUTH_TOKEN of the service, if it has one")
    parser.add_argument("--auth", choices=["subprotocol", "header"], default="subprotocol", help="how to present the token")
    parser.add_argument("--channel", default=f"python:{secrets.token_hex(4)}", help="channel to publish on")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each answer")
    args = parser.parse_args()
    try:
        asyncio.run(run(args))
    except Mismatch as mismatch:
        emit(step=mismatch.step, ok=False, expected=mismatch.expected, got=mismatch.got)
        sys.exit(1)


if __name__ == "__main__":
    main()
