// Runs a command on a real pseudo-terminal (through Debian's python3 `pty`),
// typing answers to its prompts: for what only happens on a terminal, such
// as a password prompt that must not echo.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DEBIAN_PYTHON } from './slixmpp.ts';

const SCRIPT = fileURLToPath(new URL('./pty_run.py', import.meta.url));

export interface PtyRun {
  argv: string[];
  /** [text to wait for, what to type then], in order. */
  script?: Array<[string, string]>;
  env?: Record<string, string>;
  cwd?: string;
  timeoutSeconds?: number;
}

export function runOnPty(o: PtyRun): Promise<{ code: number; output: string }> {
  const spec = JSON.stringify({
    argv: o.argv,
    script: o.script ?? [],
    env: o.env ?? {},
    cwd: o.cwd ?? '.',
    timeout: o.timeoutSeconds ?? 60,
  });
  return new Promise((resolve, reject) => {
    execFile(DEBIAN_PYTHON, [SCRIPT, spec], { maxBuffer: 1 << 20 }, (err, stdout) => {
      if (err) return reject(err);
      resolve(JSON.parse(stdout) as { code: number; output: string });
    });
  });
}
