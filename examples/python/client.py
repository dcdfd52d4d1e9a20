#!/usr/bin/env python3
"""A ws-service client in Python: runs the protocol and checks every answer.

    python3 examples/python/client.py ws://localhost:8080/ws
    python3 examples/python/client.py --token "$AUTH_TOKEN" ws://localhost:8080/ws
    python3 examples/python/client.py URL_A URL_B     # two instances on one Redis

Steps: ping, echo, an unknown type; subscribe (one subscriber connection per URL), publish from
a separate connection to the first URL with a fresh W3C traceparent, the delivery on every
subscriber at the position `published` gave and in that trace (with two URLs or more: each
instance delivers it under a span of its own, so it crossed), unsubscribe. Then the
recover-after-reconnect cycle (docs/protocol.md, "History and recovery"): a subscriber on the
last URL receives some publications, closes its socket, more are published meanwhile, and it
reconnects (to the next URL: the first, with two) and subscribes with `since` set to the last
position it received; the service must answer `recovered: true` and send exactly the missed
publications, in order, then the live stream, with no duplicate.

Each step prints one JSON line ({"step": ..., "ok": ...}); the first answer that differs from
the protocol prints what was expected and what came, and the script exits 1. A refused or
failed connection also exits 1. Fields a reply carries beyond the ones checked are ignored, as
a client must: the protocol gains fields.

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
EPOCH = re.compile(r"^[0-9a-f]{1,32}$")
# Publications the recover cycle makes while subscribed, then while disconnected.
BEFORE_CLOSE, WHILE_CLOSED = 3, 4


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

    async def receive(self, step):
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
            frame = await self.receive(step)
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
            frame = await self.receive(step)
            if frame.get("type") == "message":
                return frame
            raise Mismatch(step, "a message delivery", frame)


def expect(step, got, expected):
    if got != expected:
        raise Mismatch(step, expected, got)


def expect_fields(step, frame, expected):
    """The fields named in `expected` must hold exactly those values; others are not looked at."""
    expect(step, {key: frame.get(key) for key in expected}, expected)


def position_of(step, frame):
    """A frame's channel position, {"epoch": <hex string>, "offset": <integer ≥ 0>}."""
    epoch, offset = frame.get("epoch"), frame.get("offset")
    valid = isinstance(epoch, str) and EPOCH.match(epoch) and type(offset) is int and offset >= 0
    if not valid:
        raise Mismatch(step, "a position: epoch a hex string, offset an integer ≥ 0", frame)
    return {"epoch": epoch, "offset": offset}


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


async def basics(publisher):
    ping_id = publisher.next_id("ping")
    expect("ping", await publisher.request("ping", {"type": "ping", "id": ping_id}), {"type": "pong", "id": ping_id})
    emit(step="ping", ok=True)

    data = {"text": "héllo ✓", "numbers": [1, 2.5, -3, None, True], "nested": {"a": {"b": []}}}
    echo_id = publisher.next_id("echo")
    expect("echo", await publisher.request("echo", {"type": "echo", "id": echo_id, "data": data}), {"type": "echo", "id": echo_id, "data": data})
    emit(step="echo", ok=True)

    unknown_id = publisher.next_id("unknown")
    error = await publisher.request("unknown_type", {"type": "no-such-type", "id": unknown_id})
    expect_fields("unknown_type", error, {"type": "error", "id": unknown_id, "code": "unknown_type"})
    emit(step="unknown_type", ok=True)


async def subscribe(step, peer, channel, since=None):
    """Subscribes (with `since` when given) and returns the `subscribed` reply, its position checked."""
    sub_id = peer.next_id("sub")
    message = {"type": "subscribe", "id": sub_id, "channel": channel}
    if since is not None:
        message["since"] = since
    reply = await peer.request(step, message)
    expect_fields(step, reply, {"type": "subscribed", "id": sub_id, "channel": channel})
    position_of(step, reply)
    return reply


async def publish(step, publisher, channel, data, traceparent=None):
    """Publishes and returns the position `published` gave it."""
    pub_id = publisher.next_id("pub")
    message = {"type": "publish", "id": pub_id, "channel": channel, "data": data}
    if traceparent is not None:
        message["traceparent"] = traceparent
    reply = await publisher.request(step, message)
    expect_fields(step, reply, {"type": "published", "id": pub_id, "channel": channel})
    return position_of(step, reply)


async def deliver(step, subscriber, channel, data, position):
    """The next delivery must be this publication, at this position; returns the frame."""
    frame = await subscriber.delivery(step)
    expect_fields(step, frame, {"type": "message", "channel": channel, "data": data, **position})
    return frame


async def fan_out(publisher, subscribers, channel):
    for subscriber in subscribers:
        reply = await subscribe("subscribe", subscriber, channel)
        emit(step="subscribe", ok=True, url=subscriber.url, epoch=reply["epoch"], offset=reply["offset"])

    trace_id, span_id, traceparent = new_traceparent()
    payload = {"from": "python", "nonce": secrets.token_hex(4)}
    position = await publish("publish", publisher, channel, payload, traceparent)
    emit(step="publish", ok=True, url=publisher.url, trace_id=trace_id, span_id=span_id, **position)

    delivery_spans = []
    for subscriber in subscribers:
        frame = await deliver("deliver", subscriber, channel, payload, position)
        match = TRACEPARENT.match(str(frame.get("traceparent")))
        # The delivery names the server's span, in the trace this script started.
        expect("deliver", match is not None and match.group(1), trace_id)
        delivery_spans.append(match.group(2))
        emit(step="deliver", ok=True, url=subscriber.url, trace_id=match.group(1), span_id=match.group(2), **position)

    if len(set(sub.url for sub in subscribers)) > 1:
        # Each instance delivers under a span of its own: the publication crossed to the others
        # (through Redis), rather than one instance serving every URL.
        expect("cross", len(set(delivery_spans)), len(delivery_spans))
        emit(step="cross", ok=True, urls=[sub.url for sub in subscribers], span_ids=delivery_spans)

    for subscriber in subscribers:
        unsub_id = subscriber.next_id("unsub")
        reply = await subscriber.request("unsubscribe", {"type": "unsubscribe", "id": unsub_id, "channel": channel})
        expect_fields("unsubscribe", reply, {"type": "unsubscribed", "id": unsub_id, "channel": channel})
        emit(step="unsubscribe", ok=True, url=subscriber.url)


async def recover(publisher, args, peers):
    """Subscribe, receive, disconnect, miss some, reconnect with `since`: exactly the missed ones."""
    channel = f"{args.channel}.recover"
    subscriber = await open_peer(args.urls[-1], "recover_subscriber", args)
    peers.append(subscriber)
    await subscribe("recover_subscribe", subscriber, channel)
    last = None
    for seq in range(1, BEFORE_CLOSE + 1):
        position = await publish("recover_publish", publisher, channel, {"seq": seq})
        await deliver("recover_receive", subscriber, channel, {"seq": seq}, position)
        last = position
    emit(step="recover_receive", ok=True, url=subscriber.url, received=BEFORE_CLOSE, **last)

    await subscriber.ws.close(1000)
    emit(step="recover_close", ok=True, url=subscriber.url, code=subscriber.ws.close_code)
    missed = []
    for seq in range(BEFORE_CLOSE + 1, BEFORE_CLOSE + WHILE_CLOSED + 1):
        missed.append(({"seq": seq}, await publish("recover_publish", publisher, channel, {"seq": seq})))
    expect("recover_publish", [p["offset"] for _, p in missed], [last["offset"] + i for i in range(1, WHILE_CLOSED + 1)])
    emit(step="recover_publish", ok=True, url=publisher.url, published=WHILE_CLOSED)

    # Reconnect to the next instance after the last URL (the first), as a client does when a
    # deploy closes its connection.
    subscriber = await open_peer(args.urls[0], "recover_subscriber", args)
    peers.append(subscriber)
    reply = await subscribe("recover_resubscribe", subscriber, channel, since=last)
    expect_fields("recover_resubscribe", reply, {"recovered": True, "replayed": WHILE_CLOSED, **missed[-1][1]})
    emit(step="recover_resubscribe", ok=True, url=subscriber.url, since=last, recovered=True, replayed=reply["replayed"])

    for data, position in missed:
        await deliver("recover_replay", subscriber, channel, data, position)
    emit(step="recover_replay", ok=True, url=subscriber.url, seqs=[d["seq"] for d, _ in missed])

    # Then the live stream: the next publication is the next delivery, so nothing came twice
    # between the replay and it; a ping answered next shows nothing else was queued behind it.
    seq = BEFORE_CLOSE + WHILE_CLOSED + 1
    position = await publish("recover_live", publisher, channel, {"seq": seq})
    await deliver("recover_live", subscriber, channel, {"seq": seq}, position)
    ping_id = subscriber.next_id("ping")
    await subscriber.ws.send(json.dumps({"type": "ping", "id": ping_id}))
    expect("recover_live", await subscriber.receive("recover_live"), {"type": "pong", "id": ping_id})
    emit(step="recover_live", ok=True, url=subscriber.url, seq=seq, **position)


async def run(args):
    publisher = await open_peer(args.urls[0], "publisher", args)
    subscribers = [await open_peer(url, "subscriber", args) for url in args.urls]
    peers = [publisher, *subscribers]
    try:
        await basics(publisher)
        await fan_out(publisher, subscribers, args.channel)
        await recover(publisher, args, peers)
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
