#!/usr/bin/env node
// A tiny WebSocket client for trying the service with nothing but what `npm ci` installed:
// connects, sends each message given (as text, JSON or not), prints every reply on its own line,
// closes with 1000 once each message has been answered, and exits.
//
//   npm run client -- [url] [message ...]
//   npm run client -- ws://localhost:8080/ws '{"type":"ping","id":"1"}' '{"type":"echo","id":"2","data":"hi"}'
//
// Defaults: url ws://localhost:8080/ws, one ping. Exit code 0 when every message was answered;
// 1 when the connection failed, closed first, or a reply took longer than CLIENT_TIMEOUT_MS
// (default 5000); 2 for a bad URL. Plain JavaScript, not compiled: it runs before `npm run build`.
import WebSocket from 'ws';

const [url = 'ws://localhost:8080/ws', ...given] = process.argv.slice(2);
const messages = given.length > 0 ? given : ['{"type":"ping","id":"1"}'];
const timeoutMs = Number(process.env.CLIENT_TIMEOUT_MS ?? 5000);

let ws;
try {
  ws = new WebSocket(url);
} catch (err) {
  console.error(`client: ${err instanceof Error ? err.message : String(err)}`);
  console.error('usage: npm run client -- [ws://host:port/path] [message ...]');
  process.exit(2);
}

let unanswered = messages.length;
const timer = setTimeout(() => {
  console.error(`client: ${unanswered} of ${messages.length} message(s) unanswered after ${timeoutMs} ms`);
  process.exitCode = 1;
  ws.terminate();
}, timeoutMs);

ws.on('open', () => {
  for (const message of messages) ws.send(message);
});
ws.on('message', (data, isBinary) => {
  console.log(isBinary ? `<binary, ${data.length} bytes>` : data.toString());
  if (--unanswered === 0) ws.close(1000);
});
ws.on('close', (code, reason) => {
  clearTimeout(timer);
  if (unanswered > 0 && process.exitCode === undefined) {
    console.error(`client: closed by the server with ${code}${reason.length > 0 ? ` ${reason.toString()}` : ''}, ${unanswered} message(s) unanswered`);
    process.exitCode = 1;
  }
});
ws.on('error', (err) => {
  clearTimeout(timer);
  console.error(`client: ${err.message}`);
  process.exitCode = 1;
});
