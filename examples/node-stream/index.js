// Streaming both ways: generators for results, `for await` over the request for bodies.

/** Streams N chunks `0\n`, `1\n`, ... where N is the request body (a decimal number). */
export async function* count(request) {
  const n = Number((await request.text()).trim() || '0');
  for (let i = 0; i < n; i++) yield `${i}\n`;
}

/** Streams the body back uppercased, each chunk as soon as it arrives. */
export async function* upper(request) {
  for await (const chunk of request) yield chunk.toString('utf8').toUpperCase();
}
