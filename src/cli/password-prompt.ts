// Reading a new password for adduser/passwd. On a terminal: typed twice,
// never echoed (raw mode, so nothing reaches the screen or the scrollback).
// From a pipe (scripts): the first line, once.
import type { ReadStream } from 'node:tty';

export class PromptError extends Error {}

interface Io {
  input: NodeJS.ReadableStream & Partial<Pick<ReadStream, 'isTTY' | 'setRawMode'>>;
  output: NodeJS.WritableStream;
}

const defaultIo = (): Io => ({ input: process.stdin, output: process.stderr });

export async function readNewPassword(io: Io = defaultIo()): Promise<string> {
  if (!io.input.isTTY) {
    const pw = await readLine(io.input);
    if (!pw)
      throw new PromptError(
        'empty passwords are not allowed (write the password as the first line of stdin)',
      );
    return pw;
  }
  const first = await readHidden(io, 'Password: ');
  if (!first) throw new PromptError('empty passwords are not allowed');
  const second = await readHidden(io, 'Retype password: ');
  if (first !== second) throw new PromptError('the passwords do not match; nothing was changed');
  return first;
}

/** The first line of a non-terminal input (without its line ending). */
async function readLine(input: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of input) {
    chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
    if ((c as Buffer).includes(10)) break;
  }
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}

/** One line typed on the terminal with echo off. */
function readHidden(io: Io, prompt: string): Promise<string> {
  const { input, output } = io;
  // Echo off before the prompt shows, so nothing typed after it is echoed.
  input.setRawMode!(true);
  output.write(prompt);
  input.setEncoding('utf8');
  input.resume();
  return new Promise((resolve, reject) => {
    let chars: string[] = [];
    // Inside an escape sequence (arrow keys send ESC [ A): skipped whole.
    let inEscape: '' | 'esc' | 'csi' = '';
    const finish = (fn: () => void) => {
      input.off('data', onData);
      input.setRawMode!(false);
      input.pause();
      output.write('\n');
      fn();
    };
    const onData = (data: string) => {
      for (const ch of data) {
        if (inEscape === 'esc') {
          inEscape = ch === '[' || ch === 'O' ? 'csi' : '';
          continue;
        }
        if (inEscape === 'csi') {
          if (ch >= '@' && ch <= '~') inEscape = '';
          continue;
        }
        switch (ch) {
          case '\u001b':
            inEscape = 'esc';
            break;
          case '\r':
          case '\n':
            return finish(() => resolve(chars.join('')));
          case '\u0003': // Ctrl-C
          case '\u0004': // Ctrl-D
            return finish(() => reject(new PromptError('cancelled')));
          case '\u007f': // Backspace (DEL) and Ctrl-H
          case '\b':
            chars.pop();
            break;
          case '\u0015': // Ctrl-U clears the line
            chars = [];
            break;
          default:
            // Other control characters are not part of a password.
            if (ch >= ' ') chars.push(ch);
        }
      }
    };
    input.on('data', onData);
  });
}
