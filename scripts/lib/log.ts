// The one logger set-up of every presence-counter command (pino): the same base fields everywhere
// and a readable or a JSON form.
//
//   json    one JSON object per line: {"level":30,"time":<ms>,"component":"gateway",...,"msg":"..."}
//   pretty  one readable line per entry (pino-pretty): time, level, component, message, then the fields
//   auto    pretty when the destination is a terminal, else json (the default: journald, files and
//           pipes get JSON, a person at a terminal gets lines)
//
// Base fields: `component` always (gateway, aggregator, demo, simulate), then what identifies the
// instance where there is one (a gateway's `site`, `zone`, `gateway`). No `pid`, `hostname` or
// `name`: the journal and container runtimes record those. A log call must not repeat a base field
// (that would write the key twice): use log.child() bindings only for fields the base lacks.
import { pino, type DestinationStream, type Logger } from 'pino';
import { createRequire } from 'node:module';
import { redactLogLine } from './secrets.ts';

// pino-pretty is loaded only when a pretty log is asked for (JSON runs never load it).
const require = createRequire(import.meta.url);

export const LOG_FORMATS = ['auto', 'pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LogOptions {
  component: string;
  level?: string;
  format?: LogFormat | string;
  /** More base fields after `component` (e.g. site, zone, gateway). */
  base?: Record<string, unknown>;
  /** File descriptor (default 2, stderr) or a file path (then json unless format is pretty). */
  dest?: number | string;
  /** Called when a write to the file `dest` fails (ENOSPC: a full disk): without it, that error ends
   *  the process (an 'error' event with no listener). The line is kept and tried again with the next. */
  onWriteError?: (e: NodeJS.ErrnoException) => void;
  /** Whether the destination is a terminal (default: isatty of the descriptor). */
  tty?: boolean;
}

/** pretty or json for a format and a destination. */
export function resolveFormat(format: string | undefined, tty: boolean): 'pretty' | 'json' {
  if (format === 'pretty' || format === 'json') return format;
  return tty ? 'pretty' : 'json';
}

/** A logger of one component: a root logger (no base fields) with the component's fields bound. */
export function createLogger(o: LogOptions): Logger {
  return createRootLogger(o).child({ component: o.component, ...(o.base ?? {}) });
}

/**
 * A logger without base fields, for a process that hosts several components on one destination
 * (the demo): each gets root.child({ component, ... }), so no key is ever written twice.
 */
export function createRootLogger(o: Omit<LogOptions, 'component' | 'base'>): Logger {
  const dest = o.dest ?? 2;
  const tty = o.tty ?? (typeof dest === 'number' && (dest === 2 ? !!process.stderr.isTTY : dest === 1 ? !!process.stdout.isTTY : false));
  // Every line goes through redactLogLine: no URL's credentials reach a log, whichever call logged it.
  const options = { level: o.level ?? 'info', base: null, hooks: { streamWrite: redactLogLine } };
  let stream: DestinationStream;
  const file = () => {
    const d = pino.destination({ dest, sync: true, mkdir: true });
    if (o.onWriteError) d.on('error', o.onWriteError);
    return d;
  };
  const pretty = resolveFormat(o.format, tty) === 'pretty' ? loadPretty() : null;
  if (pretty)
    stream = pretty({
      destination: typeof dest === 'number' ? dest : file(),
      sync: true,
      colorize: tty,
      singleLine: true,
      translateTime: 'SYS:HH:MM:ss.l',
      messageFormat: '{if component}{component}: {end}{msg}',
      ignore: 'component',
    });
  else stream = typeof dest === 'string' ? file() : pino.destination({ dest, sync: true });
  return pino(options, stream);
}

type Pretty = (opts: Record<string, unknown>) => DestinationStream;
function loadPretty(): Pretty | null {
  try {
    const m = require('pino-pretty') as Pretty | { default: Pretty };
    return typeof m === 'function' ? m : m.default;
  } catch {
    process.stderr.write('presence: pino-pretty is not installed (npm ci); logging JSON lines instead\n');
    return null;
  }
}
