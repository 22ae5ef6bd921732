// `presence`: the one CLI. Each component registers its own subcommands.
import { Command, CommanderError } from 'commander';
import { exitAfterOutput, exitUsage, isUsageError, outputFailedLine, printable } from './lib/usage.ts';
import { distance } from './lib/config-loader.ts';
import { holdsUrlCredentials, redactUrlsIn, withoutBareUserinfo } from './lib/secrets.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from './package-root.ts';

export const VERSION: string = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')).version;

type Register = (program: Command) => void;
// [subcommands a module registers, its loader, its exported register function]
const COMMANDS: Array<[string[], () => Promise<Record<string, unknown>>, string]> = [
  [['replay'], () => import('../gateway/replay.ts'), 'registerReplay'],
  [['gateway', 'doctor'], () => import('../gateway/cli.ts'), 'registerGateway'],
  [['corridor'], () => import('../gateway/corridor-cli.ts'), 'registerCorridor'],
  [['aggregator'], () => import('../aggregator/cli.ts'), 'registerAggregator'],
  [['calibrate'], () => import('../aggregator/calibration/cli.ts'), 'registerCalibrate'],
  [['influx'], () => import('../aggregator/influx-setup.ts'), 'registerInflux'],
  [['provision'], () => import('../aggregator/provision.ts'), 'registerProvision'],
  [['simulate'], () => import('../simulator/cli.ts'), 'registerSimulate'],
  [['demo'], () => import('./demo/index.ts'), 'registerDemo'],
];

/**
 * The program with the subcommands `argv` needs. A named subcommand loads only the module that
 * registers it, and `--version` alone loads none, so neither pays for the others' imports; help,
 * `help <command>` and unknown names load all. Without `argv`, all are loaded.
 */
export async function buildProgram(argv?: string[]): Promise<Command> {
  const program = new Command('presence')
    .description('Count crowds and traffic from Wi-Fi and Bluetooth signals without tracking anyone.')
    .version(VERSION)
    // A mistake in the call is one line and one hint (scripts/lib/usage.ts), never the whole help.
    .showHelpAfterError(false)
    .exitOverride();
  const args = argv?.slice(2) ?? [];
  const name = args.find((a) => !a.startsWith('-'));
  const known = COMMANDS.filter(([names]) => name !== undefined && names.includes(name));
  const versionOnly = argv !== undefined && name === undefined && args.some((a) => a === '-V' || a === '--version');
  for (const [, load, fn] of versionOnly ? [] : known.length > 0 ? known : COMMANDS) {
    const mod = await load();
    (mod[fn] as Register)(program);
  }
  for (const cmd of allCommands(program)) {
    cmd.exitOverride();
    cmd.showHelpAfterError(false);
    cmd.configureOutput({
      // A value echoed back (a choice it is not, an unknown option) may be a URL with credentials
      // pasted into the wrong flag: named without them, as everywhere else.
      outputError: (text, write) =>
        write(
          usageText(
            commandPath(cmd),
            holdsUrlCredentials(text) ? redactUrlsIn(text) : text,
            cmd.options.flatMap((o) => (o.long ? [o.long] : [])),
          ),
        ),
    });
  }
  return program;
}

function allCommands(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap(allCommands)];
}

/** "gateway", "influx setup"; "" for the program itself. */
function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * Commander's "error: unknown option '--x'\n(Did you mean --y?)" as one line and a hint line.
 * An unknown option given as `--name=value` is named without its value, which can be a secret
 * (`--mqtt-pasword=...`, `--http-password=...`: commander quoted it whole), with the "did you
 * mean" of the name among `flags`, the command's long options (commander's own compared the value too).
 * A flag of the command that takes no value, given one (`--hold=yes`), is said to take none. An
 * unknown short option with more in its word (`-pSecret`) is named by its letter.
 */
export function usageText(path: string, text: string, flags: string[] = []): string {
  const lines = text
    .trim()
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  let msg = lines[0].replace(/^error: /, '');
  let didYouMean = lines.slice(1).find((l) => /^\(Did you mean/.test(l));
  const withValue = /^unknown option '(--[^'=\s]+)=.*'$/s.exec(msg);
  if (withValue) {
    const name = withValue[1];
    msg = `unknown option '${name}=...'`;
    // A flag of the command that takes no value (--hold, --json), given one: commander calls it
    // unknown, and "did you mean" would name the flag that was typed.
    const close = flags.includes(name)
      ? { f: name, d: 0 }
      : flags
          .map((f) => ({ f, d: distance(name, f) }))
          .filter(({ f, d }) => d <= 2 && d < Math.max(name.length, f.length) * 0.6)
          .sort((a, b) => a.d - b.d)[0];
    didYouMean = close && close.d > 0 ? `(Did you mean ${close.f}?)` : undefined;
    if (close?.d === 0) msg = `option '${name}' takes no value (got '${name}=...'): give ${name} alone`;
  }
  // A value an option's parser refused (commander: "option '--minutes <n>' argument '0' is invalid.
  // must be a number above 0."): said as every command says a refused number, `--minutes: must be
  // a number above 0 (got "0")`. Choices keep commander's line, which lists them.
  const refused = /^option '(?:-[^-\s,]+, )?(--[^'\s]+)[^']*' argument '(.*)' is invalid\. (?!Allowed choices)(.+?)\.?$/s.exec(msg);
  if (refused) msg = `${refused[1]}: ${refused[3]} (got ${JSON.stringify(refused[2])})`;
  // An unknown short option with more in its word (-pSecret, -P=Secret: a value written against
  // it, as mysql -pPASSWORD is) is named by its first letter only.
  const shortWithMore = /^unknown option '(-[^-'\s])[^']+'$/s.exec(msg);
  if (shortWithMore) {
    msg = `unknown option '${shortWithMore[1]}...'`;
    didYouMean = undefined;
  }
  if (didYouMean) msg += ` ${didYouMean.replace('(Did you mean', '(did you mean')}`;
  const where = path ? `presence ${path}` : 'presence';
  // The option or command named is what was typed: shown printable (an escape in it drove the terminal).
  return `${where}: ${printable(msg)}\nhint: ${where} --help lists the ${path ? 'options' : 'commands'}\n`;
}

/** A flag whose value is a secret (--mqtt-password, --influx-token, ...); a *-file flag names a file, no secret. */
const SECRET_FLAG = /^--[a-z0-9-]*(password|token|secret)$/;
/**
 * The user name and password of a URL (mqtt://user:password@host): up to the last @ before the path,
 * query or fragment, where a URL parser ends them (a password may hold an @ that is not percent-encoded).
 */
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)[^/?#\s]*@/gi;

/**
 * The command-line arguments with every secret replaced by `***` (the value of a secret flag, the
 * credentials of a URL), or null when there is none. Any user of the machine can read a process's
 * command line (`ps`, /proc/PID/cmdline); main() shows this form there instead.
 */
export function maskedArgs(args: string[]): string[] | null {
  let changed = false;
  const out = args.map((a, i) => {
    const eq = a.indexOf('=');
    let m: string;
    if (a.startsWith('--') && eq > 0 && SECRET_FLAG.test(a.slice(0, eq))) m = `${a.slice(0, eq)}=***`;
    else if (i > 0 && SECRET_FLAG.test(args[i - 1])) m = '***';
    else m = withoutBareUserinfo(a.replace(URL_CREDENTIALS, '$1***@'));
    if (m !== a) changed = true;
    return m;
  });
  return changed ? out : null;
}

export async function main(argv: string[]): Promise<void> {
  // A password or token given as a flag (or inside a URL) would be readable by every user of the
  // machine for as long as the command runs: the process title (what ps and /proc/PID/cmdline show,
  // written over the original arguments on Linux) gets the masked arguments first thing.
  const masked = maskedArgs(argv.slice(2));
  if (masked) process.title = [...argv.slice(0, 2), ...masked].join(' ');
  // A reader that goes away (`presence simulate --list | head -1`) is no crash: what would have been
  // printed is dropped and the command finishes its work (files it writes are written whole).
  // Commands that stream to stdout handle it themselves (replay stops, simulate --live names it).
  // Output that cannot be written (a full disk behind `> out.txt`) is one line, once, and exit 1, not
  // a stack trace; the command still finishes its work, as above (calibrate still writes its --out).
  let outputFailed = false;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED') return;
    if (process.stdout.listenerCount('error') !== 1 || outputFailed) return;
    outputFailed = true;
    process.stderr.write(outputFailedLine(argv.slice(2).find((a) => !a.startsWith('-')) ?? '', e));
    process.exitCode = 1;
  });
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end here too (exit 0); a usage mistake was printed by outputError.
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') await exitAfterOutput(e.exitCode);
      if (e.code === 'commander.executeSubCommandAsync') process.exit(e.exitCode);
      process.exit(2);
    }
    if (isUsageError(e)) {
      const name = argv.slice(2).find((a) => !a.startsWith('-')) ?? '';
      exitUsage(name, e);
    }
    throw e;
  }
}
