// `presence`: the one CLI. Each component registers its own subcommands.
import { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
export const VERSION: string = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;

// [module, exported register function]
const COMMANDS: Array<[string, string]> = [
  ['gateway/replay.ts', 'registerReplay'],
  ['gateway/cli.ts', 'registerGateway'],
  ['aggregator/cli.ts', 'registerAggregator'],
  ['simulator/cli.ts', 'registerSimulate'],
  ['scripts/demo.ts', 'registerDemo'],
];

export async function buildProgram(): Promise<Command> {
  const program = new Command('presence')
    .description('Count crowds and traffic from Wi-Fi and Bluetooth signals without tracking anyone.')
    .version(VERSION)
    .showHelpAfterError()
    .configureOutput({ outputError: (s, write) => write(s) });
  for (const [file, fn] of COMMANDS) {
    if (!existsSync(join(root, file))) continue;
    const mod = await import(join(root, file));
    mod[fn](program);
  }
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = await buildProgram();
  await program.parseAsync(argv);
}
