import { spawn } from 'node:child_process';

/**
 * Runs a command on a pseudo-terminal (python3's pty module), as a user at a terminal would: stdin,
 * stdout and stderr are all the terminal. When the output first matches `waitFor`, `input` is typed
 * and then Ctrl-D. Resolves with everything the terminal showed and the exit code.
 */
export interface PtyResult {
  output: string;
  code: number | null;
}

const DRIVER = String.raw`
import json, os, pty, select, sys, time
spec = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execvpe(spec["argv"][0], spec["argv"], dict(os.environ, NO_COLOR="1"))
out = b""
typed = spec.get("waitFor") is None
deadline = time.time() + spec["timeoutS"]
status = None
while time.time() < deadline:
    if not typed and spec["waitFor"].encode() in out:
        os.write(fd, spec.get("input", "").encode() + b"\x04")
        typed = True
    ready, _, _ = select.select([fd], [], [], 0.1)
    if ready:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b""
        if chunk:
            out += chunk
            continue
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        try:
            while True:
                ready, _, _ = select.select([fd], [], [], 0.2)
                if not ready:
                    break
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                out += chunk
        except OSError:
            pass
        break
else:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status) if status is not None else None
print(json.dumps({"output": out.decode("utf-8", "replace"), "code": code}))
`;

export function runOnPty(argv: string[], options: { waitFor?: string; input?: string; timeoutMs?: number } = {}): Promise<PtyResult> {
  const spec = JSON.stringify({ argv, waitFor: options.waitFor, input: options.input, timeoutS: (options.timeoutMs ?? 60_000) / 1000 });
  const child = spawn('python3', ['-c', DRIVER, spec], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (data: Buffer) => (stdout += data.toString()));
  child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  return new Promise((resolve, reject) =>
    child.once('close', (code) => {
      if (code !== 0) reject(new Error(`pty driver failed (${code}): ${stderr}`));
      else resolve(JSON.parse(stdout) as PtyResult);
    }),
  );
}
