#!/usr/bin/env node
// The reconnect-and-recover loop a subscriber must run to lose nothing across a deploy: keep
// the last {epoch, offset} it received, and when its connection closes (1001 at a deploy, or
// any other way) connect to the next instance and subscribe again with `since` set to it.
// `subscribed` then says `recovered: true` (everything missed follows, in order) or `false`
// (history no longer covers the gap, or the epoch changed: resynchronise by your own means).
//
//   node examples/recovering-client.mjs ws://localhost:8080/ws,ws://localhost:8081/ws chat:demo
//
// Prints one JSON line per event: {"event":"message",...}, {"event":"subscribed",...},
// {"event":"closed",...}. Plain JavaScript on the installed `ws`, not compiled; the project's
// deploy test drives the same class.
import WebSocket from 'ws';

export class RecoveringSubscriber {
  /**
   * @param {string[]} urls instances to use, in order; a reconnect moves to the next
   * @param {string} channel
   * @param {(event: Record<string, unknown>) => void} onEvent every message, subscribed and closed event
   */
  constructor(urls, channel, onEvent) {
    this.urls = urls;
    this.channel = channel;
    this.onEvent = onEvent;
    /** @type {{epoch: string, offset: number} | undefined} */
    this.position = undefined;
    this.next = 0;
    this.stopped = false;
    this.ws = undefined;
  }

  /** Connects and subscribes; resolves with the first `subscribed` reply. */
  start() {
    return new Promise((resolve, reject) => this.#connect(resolve, reject));
  }

  stop() {
    this.stopped = true;
    this.ws?.close(1000);
  }

  #connect(resolve, reject) {
    const url = this.urls[this.next % this.urls.length];
    this.next++;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.on('open', () => {
      const subscribe = { type: 'subscribe', id: `s${this.next}`, channel: this.channel };
      if (this.position !== undefined) subscribe.since = this.position;
      ws.send(JSON.stringify(subscribe));
    });
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString());
      if (frame.type === 'subscribed') {
        // Recovered or not, the live stream continues from the position the service gives.
        if (frame.recovered !== true || this.position === undefined) this.position = { epoch: frame.epoch, offset: frame.offset };
        this.onEvent({ event: 'subscribed', url, ...frame });
        resolve?.(frame);
        resolve = undefined;
      } else if (frame.type === 'message' && frame.channel === this.channel) {
        this.position = { epoch: frame.epoch, offset: frame.offset };
        this.onEvent({ event: 'message', url, ...frame });
      } else if (frame.type === 'error') {
        this.onEvent({ event: 'error', url, ...frame });
        ws.close(1000);
      }
    });
    ws.on('error', () => undefined);
    ws.on('close', (code) => {
      this.onEvent({ event: 'closed', url, code });
      if (this.stopped) return;
      // A short pause: the next instance may be the one just starting.
      setTimeout(() => this.#connect(resolve, reject), 50);
    });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [urls = 'ws://localhost:8080/ws', channel = 'chat:demo'] = process.argv.slice(2);
  const client = new RecoveringSubscriber(urls.split(','), channel, (event) => console.log(JSON.stringify(event)));
  void client.start();
  process.on('SIGINT', () => {
    client.stop();
    process.exit(0);
  });
}
