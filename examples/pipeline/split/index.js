// The pipeline's first stage: one `count@add` event per non-empty line of the text it gets.
// Each emit resolves once the event is durably queued; the answer is their ids, one per line,
// so a caller can wait for them (cocaine-deploy status ID --wait).
export async function split(request) {
  const lines = (await request.body()).toString().split('\n').filter((line) => line.trim() !== '');
  const queued = await Promise.all(lines.map((line) => request.emit('count@add', line)));
  request.log.info('split', { lines: lines.length });
  return queued.map((event) => `${event.id}\n`).join('');
}
