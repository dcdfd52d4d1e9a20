/**
 * One upgrade attempt with the `ws` client, reporting what the server answered: the 101's
 * headers and the selected subprotocol, or the refusal's status and JSON body.
 */
import WebSocket from 'ws';

export interface Opened {
  readonly status: 101;
  /** The subprotocol the server selected ('' when none). */
  readonly protocol: string;
  /** The raw `Sec-WebSocket-Protocol` response header, if any. */
  readonly protocolHeader: string | undefined;
}

export interface Refused {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: unknown;
}

/** Attempts an upgrade; an opened socket is closed again before this resolves. */
export function attemptUpgrade(url: string, protocols: string[] = [], headers: Record<string, string> = {}): Promise<Opened | Refused> {
  const ws = new WebSocket(url, protocols, { headers });
  let protocolHeader: string | undefined;
  return new Promise((resolve, reject) => {
    ws.on('upgrade', (res) => {
      protocolHeader = res.headers['sec-websocket-protocol'];
    });
    ws.on('open', () => {
      ws.once('close', () => resolve({ status: 101, protocol: ws.protocol, protocolHeader }));
      ws.close(1000);
    });
    ws.on('unexpected-response', (_req, res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) });
      });
    });
    ws.on('error', reject);
  });
}

export function isOpened(result: Opened | Refused): result is Opened {
  return result.status === 101;
}
