#!/usr/bin/env node
// Serves examples/browser/ on loopback for trying the browser client against a local service:
//
//   npm run example:browser                  # http://127.0.0.1:8000/
//   npm run example:browser -- 0             # any free port
//
// The page is a static file with no route of its own in the service: serving it from another
// origin is also how a browser meets ALLOWED_ORIGINS. Prints one JSON line {"url": ...} once
// listening (the browser tests read it). GET and HEAD only; nothing outside the folder.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../examples/browser/', import.meta.url));
const port = Number(process.argv[2] ?? process.env.PORT ?? 8000);
const host = '127.0.0.1';
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

/** The file a request path names inside root, or undefined for anything that would leave it. */
function fileFor(urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath.split('?')[0]);
  } catch {
    return undefined;
  }
  const file = resolve(root, `.${decoded.endsWith('/') ? `${decoded}index.html` : decoded}`);
  return file.startsWith(root) ? file : undefined;
}

const server = createServer(async (req, res) => {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD' }).end();
    return;
  }
  const file = fileFor(req.url ?? '/');
  const type = file === undefined ? undefined : TYPES[extname(file)];
  const found = type !== undefined && (await stat(file).then((s) => s.isFile(), () => false));
  if (!found) {
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n');
    return;
  }
  // no-store: an edited page is what the next reload shows.
  res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  if (req.method === 'HEAD') res.end();
  else createReadStream(file).on('error', () => res.destroy()).pipe(res);
});

server.listen(port, host, () => {
  const address = server.address();
  console.log(JSON.stringify({ url: `http://${host}:${address.port}/` }));
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)));
