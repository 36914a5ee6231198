// The smallest Node app: one handler per event, named after it.

/** Returns the request body unchanged. */
export function echo(request) {
  return request.body();
}

export function ping() {
  return 'pong';
}
