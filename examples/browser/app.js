// The example page's client: plain browser JavaScript, no build step. Every message it sends
// carries a fresh W3C traceparent, so the server's spans for it join a trace started here; a
// delivery's traceparent names the server's delivery span, in the publisher's trace. Every
// delivery and every `published` reply shows the channel position (epoch, offset) the service
// gave it: the same publication has the same position on every instance.

const PROTOCOL = 'ws-service.v1';
const BEARER_PREFIX = 'ws-service.bearer.';

const $ = (id) => document.getElementById(id);

/** The subprotocol offer carrying the token: base64url without padding (docs/protocol.md). */
function bearerOffer(token) {
  let binary = '';
  for (const byte of new TextEncoder().encode(token)) binary += String.fromCharCode(byte);
  return BEARER_PREFIX + btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomHex(bytes) {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A sampled traceparent with random ids (all-zero ids are invalid, so they are drawn again). */
function newTrace() {
  let traceId;
  let spanId;
  do traceId = randomHex(16); while (/^0+$/.test(traceId));
  do spanId = randomHex(8); while (/^0+$/.test(spanId));
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-01` };
}

/** The trace id and the span id (the server's delivery span) of a delivery's traceparent. */
function idsOf(traceparent) {
  const match = /^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/.exec(String(traceparent ?? ''));
  return match === null ? { traceId: '', spanId: '' } : { traceId: match[1], spanId: match[2] };
}

function cells(row, values) {
  for (const value of values) row.insertCell().textContent = value;
  return row;
}

let socket;
let nextId = 1;
/** Sent messages by id, until answered: their table row. */
const awaiting = new Map();
/** Trace ids this page started, to mark the deliveries of its own publishes. */
const startedHere = new Set();

function setStatus(state, text) {
  $('status').dataset.state = state;
  $('status').textContent = text;
  const open = state === 'open';
  for (const id of ['subscribe', 'publish', 'ping', 'disconnect']) $(id).disabled = !open;
  $('connect').disabled = open || state === 'connecting';
}

function send(message) {
  const id = nextId++;
  const trace = newTrace();
  startedHere.add(trace.traceId);
  const row = cells($('sent').insertRow(), [String(id), message.type, trace.traceId, '…']);
  row.dataset.id = String(id);
  row.dataset.traceId = trace.traceId;
  row.dataset.spanId = trace.spanId;
  row.className = 'trace';
  awaiting.set(id, row);
  socket.send(JSON.stringify({ ...message, id, traceparent: trace.traceparent }));
}

function onFrame(event) {
  let frame;
  try {
    frame = JSON.parse(event.data);
  } catch {
    return;
  }
  if (frame.type === 'message') {
    const { traceId, spanId } = idsOf(frame.traceparent);
    const row = cells($('deliveries').insertRow(), [frame.channel, JSON.stringify(frame.data), String(frame.epoch ?? ''), String(frame.offset ?? ''), traceId]);
    row.dataset.traceId = traceId;
    row.dataset.spanId = spanId;
    row.dataset.mine = String(startedHere.has(traceId));
    return;
  }
  const row = awaiting.get(frame.id);
  if (row === undefined) return;
  awaiting.delete(frame.id);
  row.dataset.reply = frame.type;
  let text = frame.type;
  if (frame.type === 'error') text = `error ${frame.code}: ${frame.message}`;
  else if (frame.epoch !== undefined) {
    // published: where the publication went; subscribed: where the live stream starts.
    row.dataset.epoch = String(frame.epoch);
    row.dataset.offset = String(frame.offset);
    text = `${frame.type} (epoch ${frame.epoch}, offset ${frame.offset})`;
  }
  row.cells[3].textContent = text;
}

function connect(url, token) {
  setStatus('connecting', `connecting to ${url}`);
  const protocols = token === '' ? [PROTOCOL] : [PROTOCOL, bearerOffer(token)];
  try {
    socket = new WebSocket(url, protocols);
  } catch (err) {
    setStatus('error', `cannot connect: ${err.message}`);
    return;
  }
  const current = socket;
  current.addEventListener('open', () => setStatus('open', `connected (${current.protocol})`));
  current.addEventListener('message', onFrame);
  current.addEventListener('close', (event) => {
    if (current !== socket) return;
    // A browser is never told why an upgrade failed: a 401, a 403 and a refused connection
    // all end here as 1006. The server's log and /metrics say which.
    const refused = event.code === 1006 && $('status').dataset.state === 'connecting';
    setStatus('closed', refused ? 'closed (1006): refused or unreachable; the server log says why' : `closed (${event.code})`);
  });
}

$('connect-form').addEventListener('submit', (event) => {
  event.preventDefault();
  connect($('url').value.trim(), $('token').value);
});
$('disconnect').addEventListener('click', () => socket?.close(1000));
$('subscribe-form').addEventListener('submit', (event) => {
  event.preventDefault();
  send({ type: 'subscribe', channel: $('channel').value.trim() });
});
$('publish-form').addEventListener('submit', (event) => {
  event.preventDefault();
  send({ type: 'publish', channel: $('channel').value.trim(), data: $('text').value });
});
$('ping').addEventListener('click', () => send({ type: 'ping' }));
