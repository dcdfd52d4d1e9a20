#!/usr/bin/env node
// A tiny WebSocket client for trying the service with nothing but what `npm ci` installed:
// connects, sends each message given (as text, JSON or not), prints every frame it receives on
// its own line, closes with 1000 once each message has been answered, and exits.
//
//   npm run client -- [-i] [--wait SECONDS] [url] [message ...]
//   npm run client -- ws://localhost:8080/ws '{"type":"ping","id":"1"}' '{"type":"echo","id":"2","data":"hi"}'
//
// -i (--interactive) keeps the connection open after the messages given and sends each line read
// from stdin as one more message, so a subscriber stays to print the `message` frames pushed to
// it; it closes once stdin ends (Ctrl-D) and every message is answered, or on Ctrl-C.
// --wait SECONDS stays that long after the last answer before closing, printing what is pushed
// meanwhile: a subscriber that needs no stdin, so it can run in the background (`&`), where
// reading the terminal would stop it.
// Pushed `message` frames are printed but answer nothing, so they are not counted as replies.
//
// Defaults: url ws://localhost:8080/ws, one ping (none with -i). Exit code 0 when every message
// was answered; 1 when the connection failed, closed first, or a reply took longer than
// CLIENT_TIMEOUT_MS (default 5000; with -i counted from the end of stdin); 2 for a bad URL or
// a bad --wait.
// Plain JavaScript, not compiled: it runs before `npm run build`.
import { createInterface } from 'node:readline';
import WebSocket from 'ws';

const USAGE = 'usage: npm run client -- [-i] [--wait SECONDS] [ws://host:port/path] [message ...]';
let interactive = false;
let waitMs = 0;
const positional = [];
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  if (arg === '-i' || arg === '--interactive') {
    interactive = true;
  } else if (arg === '--wait' || arg.startsWith('--wait=')) {
    const value = arg === '--wait' ? args[++i] : arg.slice('--wait='.length);
    const seconds = Number(value);
    if (value === undefined || value.trim() === '' || !Number.isFinite(seconds) || seconds < 0) {
      console.error(`client: --wait takes a number of seconds, not ${JSON.stringify(value ?? '')}`);
      console.error(USAGE);
      process.exit(2);
    }
    waitMs = seconds * 1000;
  } else {
    positional.push(arg);
  }
}
const [url = 'ws://localhost:8080/ws', ...given] = positional;
const messages = given.length > 0 || interactive ? given : ['{"type":"ping","id":"1"}'];
const timeoutMs = Number(process.env.CLIENT_TIMEOUT_MS ?? 5000);

let ws;
try {
  ws = new WebSocket(url);
} catch (err) {
  console.error(`client: ${err instanceof Error ? err.message : String(err)}`);
  console.error(USAGE);
  process.exit(2);
}

let sent = 0;
let unanswered = 0;
/** False while -i still reads stdin: more messages may come. */
let inputDone = !interactive;
let timer;
let lingering;
let lines;

function send(message) {
  sent++;
  unanswered++;
  ws.send(message);
}

function startTimer() {
  timer ??= setTimeout(() => {
    console.error(`client: ${unanswered} of ${sent} message(s) unanswered after ${timeoutMs} ms`);
    process.exitCode = 1;
    ws.terminate();
  }, timeoutMs);
}

function closeWhenDone() {
  if (!inputDone || unanswered > 0 || ws.readyState !== WebSocket.OPEN || lingering !== undefined) return;
  clearTimeout(timer);
  lingering = setTimeout(() => {
    if (ws.readyState === WebSocket.OPEN) ws.close(1000);
  }, waitMs);
}

/** A pushed channel delivery, not the answer to anything this client sent. */
function isPush(text) {
  try {
    return JSON.parse(text)?.type === 'message';
  } catch {
    return false;
  }
}

if (!interactive) startTimer();

ws.on('open', () => {
  for (const message of messages) send(message);
  if (!interactive) return;
  lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (line.trim() !== '') send(line);
  });
  lines.on('close', () => {
    inputDone = true;
    if (ws.readyState !== WebSocket.OPEN) return;
    if (unanswered > 0) startTimer();
    closeWhenDone();
  });
  process.once('SIGINT', () => {
    inputDone = true;
    unanswered = 0;
    lines.close();
    ws.close(1000);
    // A second Ctrl-C does not wait for the server's close frame.
    process.once('SIGINT', () => ws.terminate());
  });
});
ws.on('message', (data, isBinary) => {
  const text = isBinary ? `<binary, ${data.length} bytes>` : data.toString();
  console.log(text);
  if (isBinary || !isPush(text)) unanswered = Math.max(0, unanswered - 1);
  closeWhenDone();
});
ws.on('close', (code, reason) => {
  clearTimeout(timer);
  clearTimeout(lingering);
  const reading = !inputDone;
  lines?.close();
  if ((unanswered > 0 || reading) && process.exitCode === undefined) {
    console.error(`client: closed by the server with ${code}${reason.length > 0 ? ` ${reason.toString()}` : ''}${unanswered > 0 ? `, ${unanswered} message(s) unanswered` : ''}`);
    process.exitCode = 1;
  }
});
ws.on('error', (err) => {
  clearTimeout(timer);
  clearTimeout(lingering);
  lines?.close();
  console.error(`client: ${err.message}`);
  process.exitCode = 1;
});
