// `presence`: the one CLI. Each component registers its own subcommands.
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from './package-root.ts';

export const VERSION: string = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')).version;

type Register = (program: Command) => void;
// [subcommands a module registers, its loader, its exported register function]
const COMMANDS: Array<[string[], () => Promise<Record<string, unknown>>, string]> = [
  [['replay'], () => import('../gateway/replay.ts'), 'registerReplay'],
  [['gateway', 'doctor'], () => import('../gateway/cli.ts'), 'registerGateway'],
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
    .showHelpAfterError()
    .configureOutput({ outputError: (s, write) => write(s) });
  const args = argv?.slice(2) ?? [];
  const name = args.find((a) => !a.startsWith('-'));
  const known = COMMANDS.filter(([names]) => name !== undefined && names.includes(name));
  const versionOnly = argv !== undefined && name === undefined && args.some((a) => a === '-V' || a === '--version');
  for (const [, load, fn] of versionOnly ? [] : known.length > 0 ? known : COMMANDS) {
    const mod = await load();
    (mod[fn] as Register)(program);
  }
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = await buildProgram(argv);
  await program.parseAsync(argv);
}
