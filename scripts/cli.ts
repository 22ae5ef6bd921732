// `presence`: the one CLI. Each component registers its own subcommands.
import { Command, CommanderError } from 'commander';
import { exitUsage, isUsageError } from './lib/usage.ts';
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
    cmd.configureOutput({ outputError: (text, write) => write(usageText(commandPath(cmd), text)) });
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

/** Commander's "error: unknown option '--x'\n(Did you mean --y?)" as one line and a hint line. */
export function usageText(path: string, text: string): string {
  const lines = text
    .trim()
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  let msg = lines[0].replace(/^error: /, '');
  const didYouMean = lines.slice(1).find((l) => /^\(Did you mean/.test(l));
  if (didYouMean) msg += ` ${didYouMean.replace('(Did you mean', '(did you mean')}`;
  const where = path ? `presence ${path}` : 'presence';
  return `${where}: ${msg}\nhint: ${where} --help lists the ${path ? 'options' : 'commands'}\n`;
}

export async function main(argv: string[]): Promise<void> {
  // A reader that goes away (`presence simulate --list | head -1`) is no crash: what would have been
  // printed is dropped and the command finishes its work (files it writes are written whole).
  // Commands that stream to stdout handle it themselves (replay stops, simulate --live names it).
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED') return;
    if (process.stdout.listenerCount('error') === 1) throw e;
  });
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end here too (exit 0); a usage mistake was printed by outputError.
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') process.exit(e.exitCode);
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
