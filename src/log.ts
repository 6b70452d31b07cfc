// Structured one-line logs: time, level, component, message, key=value pairs.
// Callers pass JIDs and addresses, never passwords or auth payloads.
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

export type LogFields = Record<string, string | number | boolean | undefined | null>;

export class Logger {
  constructor(
    private readonly level: LogLevel,
    private readonly component = 'server',
    private readonly sink: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
  ) {}

  child(component: string): Logger {
    return new Logger(this.level, component, this.sink);
  }

  debug(msg: string, fields?: LogFields): void {
    this.write('debug', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.write('info', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.write('warn', msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.write('error', msg, fields);
  }

  enabled(level: LogLevel): boolean {
    return ORDER[level] >= ORDER[this.level];
  }

  private write(level: LogLevel, msg: string, fields?: LogFields): void {
    if (ORDER[level] < ORDER[this.level]) return;
    let line = `${new Date().toISOString()} ${level.toUpperCase()} ${this.component}: ${msg}`;
    if (fields) {
      for (const [k, v] of Object.entries(fields)) {
        if (v === undefined || v === null) continue;
        const s = String(v);
        // Quoted (and escaped) when it could break the line's shape: client-chosen text.
        line += ` ${k}=${/[\s"=\u0000-\u001f\u007f]/.test(s) || s === '' ? JSON.stringify(s) : s}`;
      }
    }
    this.sink(line);
  }
}
