/** The frames the load generator sends: echo requests padded to an exact size in bytes. */

/** An `echo` request of exactly `bytes` bytes, as the service's own clients would send it. */
export function echoFrame(id: number, bytes: number): Buffer {
  const head = `{"type":"echo","id":${id},"data":"`;
  const tail = '"}';
  const pad = bytes - head.length - tail.length;
  if (pad < 0) throw new RangeError(`an echo frame with id ${id} needs at least ${head.length + tail.length} bytes`);
  return Buffer.from(head + 'x'.repeat(pad) + tail, 'utf8');
}

/**
 * Requests whose replies show the protocol is the same on every variant, with the reply each
 * must get. Error replies are compared by code only: their human text may differ.
 */
export const CONFORMANCE: readonly { readonly frame: string; readonly reply: string | { readonly code: string } }[] = [
  { frame: '{"type":"ping","id":"p1"}', reply: '{"type":"pong","id":"p1"}' },
  { frame: '{"type":"ping"}', reply: '{"type":"pong","id":null}' },
  { frame: echoFrame(7, 64).toString(), reply: echoFrame(7, 64).toString() },
  { frame: '{"type":"echo","id":8,"data":{"a":[1,2,"\\u00e9"]}}', reply: '{"type":"echo","id":8,"data":{"a":[1,2,"é"]}}' },
  { frame: '{"type":"echo","id":9}', reply: { code: 'bad_request' } },
  { frame: '{"type":"nope","id":10}', reply: { code: 'unknown_type' } },
  { frame: 'not json', reply: { code: 'bad_request' } },
  { frame: '[1,2]', reply: { code: 'bad_request' } },
  { frame: '{"type":"ping","id":{}}', reply: { code: 'bad_request' } },
  { frame: '{"type":""}', reply: { code: 'bad_request' } },
];
