// Scenario files: built-ins validate; mistakes get one clear message naming the field.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  builtinScenarios,
  loadScenario,
  nominalPeople,
  parseDuration,
  parseScenarioText,
  resolveScenario,
  SCENARIO_DIR,
  ScenarioError,
  scenarioSchema,
} from '../simulator/scenario.ts';
import { captureDeprecations } from '../scripts/lib/deprecate.ts';
import { phoneHeardBy } from '../simulator/phones.ts';

const minimal = () => ({
  name: 'test',
  site: 'test-site',
  duration: '10m',
  gateways: [{ id: 'gw-1', zone: 'z1', position: [0, 0] }],
  crowds: [{ type: 'gathering', region: { x: 0, y: 0, width: 10, height: 10 }, occupancy: [[0, 5]] }],
});

function problems(doc: unknown): string {
  try {
    resolveScenario(doc, 'file.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(ScenarioError);
    return (e as Error).message;
  }
  throw new Error('expected a ScenarioError');
}

describe('scenario files', () => {
  it('has the three built-ins, each valid', () => {
    expect(builtinScenarios()).toEqual(expect.arrayContaining(['kingsday-square', 'traffic-corridor', 'quiet-night']));
    for (const name of builtinScenarios()) {
      const s = loadScenario(name);
      expect(s.gateways.length).toBeGreaterThan(0);
      expect(s.durationS).toBeGreaterThan(0);
    }
    expect(loadScenario('kingsday-square').gateways).toHaveLength(3);
    expect(loadScenario('traffic-corridor').gateways).toHaveLength(2);
  });

  it('parses durations', () => {
    expect(parseDuration('250ms')).toBe(0.25);
    expect(parseDuration('60s')).toBe(60);
    expect(parseDuration('15m')).toBe(900);
    expect(parseDuration('1h30m')).toBe(5400);
    expect(parseDuration(42)).toBe(42);
    expect(parseDuration('soon')).toBeNaN();
    expect(parseDuration('')).toBeNaN();
  });

  it('applies defaults and overrides (duration, window, scale, people)', () => {
    const s = resolveScenario(minimal(), 'x', { durationS: 30, windowS: 10 });
    expect(s.durationS).toBe(30);
    expect(s.windowS).toBe(10);
    expect(s.gateways[0].wifi?.channels).toEqual([1, 6, 11]);
    expect(s.gateways[0].ble?.channel).toBe(37);
    const k = loadScenario('kingsday-square', { people: 300 });
    expect(nominalPeople(k) * k.scale).toBeCloseTo(300);
    expect(loadScenario('kingsday-square', { scale: 0.5 }).scale).toBe(0.5);
  });

  it('names a bad duration and shows the value', () => {
    const d = minimal() as any;
    d.gateways[0].wifi = { dwell: 'fast' };
    expect(problems(d)).toBe('file.yaml: gateways[0].wifi.dwell: must be a duration like 250ms, 60s, 15m, 1h30m or 7d (got "fast")');
  });

  it('names a missing field, an unknown field and a bad id', () => {
    const d = minimal() as any;
    delete d.gateways[0].zone;
    d.gateways[0].colour = 'red';
    d.site = 'Bad Site';
    const m = problems(d);
    expect(m).toContain('gateways[0].zone: is required');
    expect(m).toContain('gateways[0]: unknown field "colour"');
    expect(m).toContain('site: must be lower-case letters, digits, - and _');
  });

  it('numbers that are not finite (YAML 1e400 and .nan) and a flow from a point to itself are refused, naming the field', () => {
    // Infinity passed type number: per_hour 1e400 said 'would hold ∞ people (--scale 0 or less)', a
    // gateway at Infinity heard nothing, and a flow from [0, 0] to [0, 0] ran people who were never heard.
    const d = minimal() as any;
    d.gateways[0].position = [Number.POSITIVE_INFINITY, 0];
    d.crowds.push({ type: 'flow', from: [0, 0], to: [0, 0], modes: { car: { per_hour: Number.POSITIVE_INFINITY, speed: Number.NaN } } });
    const m = problems(d);
    expect(m).toContain('gateways[0].position[0]: must be a finite number (got Infinity)');
    expect(m).toContain('crowds[1].modes.car.per_hour: must be a finite number (got Infinity)');
    expect(m).toContain('crowds[1].modes.car.speed: must be a finite number (got NaN)');
    d.gateways[0].position = [0, 0];
    d.crowds[1].modes.car = { per_hour: 60, speed: 8 };
    expect(problems(d)).toBe('file.yaml: crowds[1].to: must differ from from ([0,0]): a flow passes from one end to the other');
  });

  it('a gathering whose people stay under a second is refused (dwell 0s ran until the heap ran out)', () => {
    const d = minimal() as any;
    d.crowds[0].dwell = '0s';
    expect(problems(d)).toBe('file.yaml: crowds[0].dwell: must be at least 1s, like 30m (got 0s)');
    d.crowds[0].dwell = '500ms';
    expect(problems(d)).toBe('file.yaml: crowds[0].dwell: must be at least 1s, like 30m (got 500ms)');
    d.crowds[0].dwell = '1s';
    expect(resolveScenario(d, 'x').crowds[0]).toMatchObject({ dwellS: 1 });
    // a number that is finite is shown as given, and the type in words, as in the config files' problems
    expect(problems({ ...minimal(), start: 1700000000 })).toBe('file.yaml: start: must be text (got 1700000000)');
  });

  it('a gathering whose people move on more often than every second is refused (move_every 0s in a small region made millions of waypoints a person: 300 people ran the heap out)', () => {
    const d = minimal() as any;
    d.crowds[0].move_every = '0s';
    expect(problems(d)).toBe('file.yaml: crowds[0].move_every: must be at least 1s, like 10m (got 0s)');
    d.crowds[0].move_every = '10ms';
    expect(problems(d)).toBe('file.yaml: crowds[0].move_every: must be at least 1s, like 10m (got 10ms)');
    d.crowds[0].move_every = '1s';
    expect(resolveScenario(d, 'x').crowds[0]).toMatchObject({ moveEveryS: 1 });
  });

  it('people.primary or people.secondary without a weight above 0 is refused when people.carry gives people such a device', () => {
    const people = (p: Record<string, unknown>) => ({ ...minimal(), people: p });
    expect(problems(people({ primary: {} }))).toBe(
      'file.yaml: people.primary: needs a device model with a weight above 0, like { iphone-ios17: 1 } (people.carry gives people a device)',
    );
    expect(problems(people({ secondary: { 'watch-apple': 0 } }))).toBe(
      'file.yaml: people.secondary: needs a device model with a weight above 0, like { watch-apple: 1 } (people.carry gives people a second device)',
    );
    // nobody carries a second device: no secondary weights needed
    expect(resolveScenario(people({ carry: [0.1, 0.9, 0, 0], secondary: {} }), 'x').people.secondary).toEqual({});
  });

  it('fixed devices past the most the simulator holds are refused naming the count (100,000,000 ran the heap out)', () => {
    const fixed = (counts: number[]) => ({ ...minimal(), fixed: counts.map((count) => ({ model: 'ibeacon', position: [1, 1], count })) });
    expect(problems(fixed([2, 100_000_000]))).toBe(
      'file.yaml: fixed[1].count: the fixed devices come to 100,000,002; the simulator holds at most 100,000 (each is kept in memory): lower the count',
    );
    expect(problems(fixed([60_000, 40_001]))).toMatch(/^file\.yaml: fixed\[0\]\.count: the fixed devices come to 100,001;/);
    expect(resolveScenario(fixed([60_000, 40_000]), 'x').fixed.map((f) => f.count)).toEqual([60_000, 40_000]);
  });

  it('a name that is a path is refused: the captures go to sim-out/<name> (name "../../x" wrote them outside sim-out)', () => {
    for (const name of ['../../x', '/tmp/x', 'a\\b', '.', '..'])
      expect(problems({ ...minimal(), name })).toBe(
        `file.yaml: name: must not hold a / or \\ or be . or .. (got ${JSON.stringify(name)}): the captures go to sim-out/<name> unless --out is given`,
      );
    expect(resolveScenario({ ...minimal(), name: 'Market Street' }, 'x').name).toBe('Market Street');
  });

  it('a truth_step of 0s is refused (the truth sampled one instant for ever and the run never ended)', () => {
    expect(problems({ ...minimal(), truth_step: '0s' })).toBe('file.yaml: truth_step: must be above 0, like 5s (got 0s)');
    expect(resolveScenario({ ...minimal(), truth_step: '1s' }, 'x').truthStepS).toBe(1);
  });

  it('a truth_step under 100ms is refused (1ms sampled everyone 1,000 times a second: a day took hours, for the same truth)', () => {
    const line = (got: string) =>
      `file.yaml: truth_step: must be at least 100ms, like 5s (got ${got}): who is in reach is sampled this often, and a walker moves 14 cm in 100 ms; a finer step only makes the run slower`;
    expect(problems({ ...minimal(), truth_step: '1ms' })).toBe(line('1ms'));
    expect(problems({ ...minimal(), truth_step: '99ms' })).toBe(line('99ms'));
    expect(resolveScenario({ ...minimal(), truth_step: '100ms' }, 'x').truthStepS).toBe(0.1);
    // the default (5s, or the window if shorter) is not an explicit step: a short window still runs
    expect(resolveScenario({ ...minimal(), window: '50ms' }, 'x').truthStepS).toBe(0.05);
  });

  it('an empty file, a list and broken YAML are each one line that ends where the problem is', () => {
    const parsed = (text: string) => {
      try {
        return resolveScenario(parseScenarioText(text, 'f.yaml'), 'f.yaml');
      } catch (e) {
        expect(e).toBeInstanceOf(ScenarioError);
        return (e as Error).message;
      }
    };
    // an empty file said '(top level): must be object'; a YAML error ended in ':' with nothing after it
    expect(parsed('')).toBe('f.yaml: the file is empty; a scenario needs at least name, site, duration and gateways');
    expect(parsed('# nothing yet\n')).toBe('f.yaml: the file is empty; a scenario needs at least name, site, duration and gateways');
    expect(parsed('- name: x\n')).toBe('f.yaml: (top level): must be a mapping of keys (name:, site:, duration:, gateways: ...), not a list');
    expect(parsed('name: x\n\tsite: y\n')).toBe('f.yaml: not valid YAML: Tabs are not allowed as indentation at line 2, column 1');
  });

  it('checks each occupancy point: a time, and a number of people that is a finite number >= 0', () => {
    // The schema's tuple was written as draft 2020's prefixItems, which this Ajv (draft-07) ignores:
    // -5 people and "ten" people ran (as a crowd of none), "fast" said "600 s after NaN s".
    const at = (occupancy: unknown[]) => {
      const d = minimal() as any;
      d.crowds[0].occupancy = occupancy;
      return problems(d);
    };
    expect(
      at([
        [0, -5],
        ['10m', 10],
      ]),
    ).toBe('file.yaml: crowds[0].occupancy[0][1]: must be >= 0 (got -5)');
    expect(
      at([
        [0, 'ten'],
        ['10m', 10],
      ]),
    ).toBe('file.yaml: crowds[0].occupancy[0][1]: must be a number (got "ten")');
    expect(
      at([
        ['fast', 5],
        ['10m', 10],
      ]),
    ).toBe('file.yaml: crowds[0].occupancy[0][0]: must be a duration like 250ms, 60s, 15m, 1h30m or 7d (got "fast")');
    expect(
      at([
        [0, 5],
        ['10m', Number.POSITIVE_INFINITY],
      ]),
    ).toBe('file.yaml: crowds[0].occupancy[1][1]: must be a finite number (got Infinity)');
    expect(
      resolveScenario(
        {
          ...minimal(),
          crowds: [
            {
              ...minimal().crowds[0],
              occupancy: [
                [0, 2.5],
                ['10m', 0],
              ],
            },
          ],
        },
        'x',
      ).crowds[0],
    ).toMatchObject({
      occupancy: [
        [0, 2.5],
        [600, 0],
      ],
    });
  });

  it('names an unknown device model, a duplicate gateway and times out of order', () => {
    const d = minimal() as any;
    d.people = { primary: { 'nokia-3310': 1 } };
    d.gateways.push({ id: 'gw-1', zone: 'z2', position: [5, 5] });
    d.crowds[0].occupancy = [
      [0, 5],
      ['1h', 10],
      ['30m', 3],
    ];
    const m = problems(d);
    expect(m).toMatch(/people\.primary: unknown device model "nokia-3310" \(known: .*iphone-ios17/);
    expect(m).toContain('gateways[1].id: "gw-1" is used by another gateway');
    expect(m).toContain('crowds[0].occupancy[2]: times must increase');
  });

  it('checks the fields of a flow crowd', () => {
    const d = minimal() as any;
    d.crowds = [{ type: 'flow', from: [0, 0], to: [100, 0], modes: { car: { per_hour: 'lots', speed: 10 } } }];
    expect(problems(d)).toContain('crowds[0].modes.car.per_hour: must be a number (got "lots")');
  });

  it("a crowd type that is neither gathering nor flow is one line naming it (a misspelt 'gatherin' was checked as a flow: from, to and modes required, every gathering key unknown, the type itself named last, twice)", () => {
    const d = minimal() as any;
    d.crowds[0].type = 'gatherin';
    expect(problems(d)).toBe('file.yaml: crowds[0].type: must be one of "gathering", "flow" (got "gatherin")');
    d.crowds = [{ type: 'Flow', from: [0, 0], to: [100, 0], modes: { car: { per_hour: 60, speed: 10 } } }];
    expect(problems(d)).toBe('file.yaml: crowds[0].type: must be one of "gathering", "flow" (got "Flow")');
    d.crowds = [{ type: 7, region: { x: 0, y: 0, width: 10, height: 10 }, occupancy: [[0, 5]] }];
    expect(problems(d)).toBe('file.yaml: crowds[0].type: must be one of "gathering", "flow" (got 7)');
  });

  it('a scenario with neither a crowd that holds anyone nor a fixed device is refused (it wrote captures of 0 frames without a word, where --scale 0 on such a scenario is refused)', () => {
    const d = minimal() as any;
    delete d.crowds;
    expect(problems(d)).toBe(
      'file.yaml: crowds: the scenario has no crowds and no fixed devices, so nothing would send a frame and the captures would be empty; add a gathering or a flow under crowds:, or devices under fixed:',
    );
    d.crowds = [];
    expect(problems(d)).toMatch(/^file\.yaml: crowds: the scenario has no crowds and no fixed devices/);
    d.crowds = [
      {
        type: 'gathering',
        region: { x: 0, y: 0, width: 10, height: 10 },
        occupancy: [
          [0, 0],
          [60, 0],
        ],
      },
    ];
    expect(problems(d)).toBe(
      "file.yaml: crowds: hold nobody at their peak (every occupancy is 0 and every flow's per_hour 0) and the scenario has no fixed devices, so nothing would send a frame and the captures would be empty; give a crowd people, or add devices under fixed:",
    );
    // fixed devices alone are a scenario (quiet-night at --scale 0)
    d.fixed = [{ model: 'ibeacon', position: [0, 0] }];
    expect(resolveScenario(d, 'x').fixed).toHaveLength(1);
    delete d.crowds;
    expect(resolveScenario(d, 'x').crowds).toEqual([]);
  });

  it('a radio given as true or another value that is neither false nor a mapping is one line saying what goes there (wifi: true gave two: "must be false" and "must be a mapping"), and a mapping with a mistake the mistake alone', () => {
    const d = minimal() as any;
    d.gateways[0].wifi = true;
    expect(problems(d)).toBe(
      'file.yaml: gateways[0].wifi: must be false (no Wi-Fi radio) or a mapping of its settings like { channels: [1, 6, 11] }; leave it out for the default radio (got true)',
    );
    d.gateways[0].wifi = false;
    d.gateways[0].ble = 'on';
    expect(problems(d)).toBe(
      'file.yaml: gateways[0].ble: must be false (no BLE radio) or a mapping of its settings like { channel: 37 }; leave it out for the default radio (got "on")',
    );
    // a mapping with a mistake in it: the mistake alone ("must be true or false" came first, and true is no radio's value)
    d.gateways[0].ble = { chanel: 37 };
    expect(problems(d)).toBe('file.yaml: gateways[0].ble: unknown field "chanel" (did you mean "channel"?)');
  });

  it('a flow mode whose travellers may carry nobody is refused (people [0, 0] ran empty cars whose car kits counted as devices of no one)', () => {
    const flow = (people: number[]) => {
      const d = minimal() as any;
      d.crowds = [{ type: 'flow', from: [0, 0], to: [100, 0], modes: { car: { per_hour: 60, speed: 10, people } } }];
      return d;
    };
    expect(problems(flow([0, 0]))).toBe('file.yaml: crowds[0].modes.car.people: each car carries at least one person, like [1, 3] (got [0,0])');
    expect(problems(flow([0, 3]))).toBe('file.yaml: crowds[0].modes.car.people: each car carries at least one person, like [1, 3] (got [0,3])');
    expect(problems(flow([3, 1]))).toBe('file.yaml: crowds[0].modes.car.people: [min, max] with max >= min');
    expect(resolveScenario(flow([1, 3]), 'x').crowds[0]).toMatchObject({ modes: { car: { people: [1, 3] } } });
  });

  it('--people on crowds that hold nobody at their peak says so (it said the scenario had no crowds, only fixed equipment)', () => {
    const d = minimal() as any;
    d.crowds[0].occupancy = [[0, 0]];
    expect(() => resolveScenario(d, 'file.yaml', { people: 100 })).toThrow(
      "file.yaml: --people 100: the scenario's crowds hold nobody at their peak (every occupancy is 0 and every flow's per_hour 0), so no scale gives a peak of 100 people; leave out --people, or give a crowd people in the file",
    );
    d.crowds = [];
    expect(() => resolveScenario(d, 'file.yaml', { people: 100 })).toThrow(/the scenario has no crowds to scale \(its devices are fixed equipment\)/);
  });

  it("the simulator's own scenarios (the built-ins, the single-phone runs of --evaluate) use no deprecated key or bare duration", () => {
    const { lines } = captureDeprecations(() => {
      for (const name of builtinScenarios()) loadScenario(name);
      phoneHeardBy('iphone-ios17', [{ channels: [1], dwell: '24h', switch: '0ms' }], { durationS: 60 });
    });
    expect(lines).toEqual([]);
  });

  it('reads the camelCase keys of earlier scenario files the same as snake_case ones, with one deprecation line per key', () => {
    const snake = parseScenarioText(readFileSync(join(SCENARIO_DIR, 'crossroads.yaml'), 'utf8'), 'crossroads.yaml') as any;
    const camel = structuredClone(snake);
    camel.truthStep = camel.truth_step;
    delete camel.truth_step;
    camel.environment = { pathLossExponent: 2.5, bodyLossDb: 7 };
    snake.environment = { path_loss_exponent: 2.5, body_loss_db: 7 };
    for (const g of camel.gateways) {
      g.wifi.sensitivityDbm = g.wifi.sensitivity_dbm;
      delete g.wifi.sensitivity_dbm;
    }
    let modes = 0;
    for (const c of camel.crowds)
      for (const m of Object.values<any>(c.modes ?? {})) {
        for (const [o, n] of [
          ['perHour', 'per_hour'],
          ['speedCv', 'speed_cv'],
          ['attenuationDb', 'attenuation_db'],
          ['vehicleDevices', 'vehicle_devices'],
        ])
          if (n in m) {
            m[o] = m[n];
            delete m[n];
            modes++;
          }
      }
    expect(modes).toBeGreaterThan(3);
    const { result, lines } = captureDeprecations(() => resolveScenario(camel, 'old.yaml'));
    expect(result).toEqual(resolveScenario(snake, 'new.yaml'));
    expect(result.environment.pathLossExponent).toBe(2.5);
    expect(result.environment.bodyLossDb).toBe(7);
    expect(lines).toContain(
      'presence: warning: config key gateways[].wifi.sensitivityDbm (in old.yaml) is deprecated, use gateways[].wifi.sensitivity_dbm; the old name still works for now',
    );
    expect(lines).toContain('presence: warning: config key truthStep (in old.yaml) is deprecated, use truth_step; the old name still works for now');
    expect(lines.filter((l) => l.includes('perHour'))).toHaveLength(1); // one line per key, not per mode
    expect(camel.truthStep).toBeDefined(); // the caller's object is not changed
    // both names: the new one wins
    const both = structuredClone(snake);
    both.truthStep = '60s';
    expect(captureDeprecations(() => resolveScenario(both, 'both.yaml')).result.truthStepS).toBe(resolveScenario(snake, 'x').truthStepS);
  });

  it('reports YAML syntax errors and unknown scenario names clearly', () => {
    expect(() => parseScenarioText('name: [unclosed', 'bad.yaml')).toThrow(/bad\.yaml: not valid YAML/);
    expect(() => loadScenario('no-such-scenario')).toThrow(
      /no-such-scenario: no such scenario file, and not a built-in scenario \(built-ins: .*kingsday-square/,
    );
  });

  it('a JSON syntax error names its line and column, not a character position', () => {
    // (the words after the place are Node's own, and differ between its versions)
    expect(() => parseScenarioText('{\n  "name": "x",\n}', 'bad.json')).toThrow(/^bad\.json: not valid JSON at line 3, column 1: \S[^\n]*$/);
    expect(() => parseScenarioText('{\n  "name": "x",\n  "site": [1, 2', 'cut.json')).toThrow(/^cut\.json: not valid JSON at line 3, column 16: \S[^\n]*$/);
  });

  it('a Wi-Fi channel that does not exist, or one listed twice, is refused naming the gateway', () => {
    const d = minimal() as any;
    d.gateways[0].wifi = { channels: [1, 99, 6, 1] };
    const m = problems(d);
    expect(m).toContain('gateways[0].wifi.channels: 99 is not a Wi-Fi channel (2.4 GHz: 1-14; 5 GHz: 32-68, 96-144 and 149-177');
    expect(m).toContain('gateways[0].wifi.channels: a channel is listed twice (1, 99, 6, 1)');
    for (const ok of [[1, 6, 11], [14], [36, 100, 144], [149, 165, 177]]) {
      d.gateways[0].wifi = { channels: ok };
      expect(() => resolveScenario(d, 'file.yaml')).not.toThrow();
    }
    for (const bad of [15, 30, 70, 97, 145, 148, 150, 176]) {
      d.gateways[0].wifi = { channels: [bad] };
      expect(problems(d)).toContain(`${bad} is not a Wi-Fi channel`);
    }
  });

  it('accepts the sample scenario of simulator/README.md', () => {
    const readme = readFileSync(join(import.meta.dirname, '..', 'simulator', 'README.md'), 'utf8');
    const yaml = /## Sample scenario\s+```yaml\n([\s\S]*?)```/.exec(readme)![1];
    const s = resolveScenario(parseScenarioText(yaml, 'README.md'), 'README.md');
    expect(s.gateways.map((g) => g.id)).toEqual(['gw-north', 'gw-south']);
    expect(s.gateways[1].wifi).toBeUndefined();
    expect(s.gateways[1].reachM).toBe(60);
    expect(s.crowds).toHaveLength(2);
  });

  it('the sample scenario of simulator/README.md shows every key of the schema, where it goes (the hint of a scenario error says it does)', () => {
    const readme = readFileSync(join(import.meta.dirname, '..', 'simulator', 'README.md'), 'utf8');
    const doc = parseScenarioText(/## Sample scenario\s+```yaml\n([\s\S]*?)```/.exec(readme)![1], 'README.md');
    // Every key path of the schema: lists as [], a map's own keys (modes: cyclist, car, ...) as *.
    const schemaPaths = new Set<string>();
    const walk = (node: unknown, path: string): void => {
      if (!node || typeof node !== 'object' || Array.isArray(node)) return;
      const n = node as Record<string, unknown>;
      for (const [k, v] of Object.entries((n.properties as Record<string, unknown>) ?? {})) {
        const p = path ? `${path}.${k}` : k;
        schemaPaths.add(p);
        walk(v, p);
      }
      if (n.items && !Array.isArray(n.items)) walk(n.items, `${path}[]`);
      for (const branch of ['then', 'else']) walk(n[branch], path);
      const more = n.additionalProperties as Record<string, unknown> | undefined;
      if (more && typeof more === 'object' && more.properties) walk(more, `${path}.*`);
    };
    walk(scenarioSchema, '');
    const samplePaths: string[] = [];
    const collect = (node: unknown, path: string): void => {
      if (!node || typeof node !== 'object') return;
      if (Array.isArray(node)) {
        for (const x of node) collect(x, `${path}[]`);
        return;
      }
      for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
        const p = path ? `${path}.${k}` : k;
        samplePaths.push(p);
        collect(v, p);
      }
    };
    collect(doc, '');
    const shown = (p: string) => {
      const re = new RegExp(`^${p.replace(/[.[\]]/g, (c) => `\\${c}`).replace(/\\\.\*/g, '\\.[^.]+')}$`);
      return samplePaths.some((q) => re.test(q));
    };
    expect(schemaPaths.size).toBeGreaterThan(40);
    expect([...schemaPaths].filter((p) => !shown(p))).toEqual([]);
  });

  it('loads a scenario file from disk (YAML and JSON)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sim-scenario-'));
    writeFileSync(join(dir, 's.json'), JSON.stringify(minimal()));
    expect(loadScenario(join(dir, 's.json')).name).toBe('test');
    writeFileSync(
      join(dir, 's.yaml'),
      'name: y\nsite: y\nduration: 5m\ngateways:\n  - { id: g, zone: z, position: [0, 0], wifi: false }\nfixed:\n  - { model: ibeacon, position: [1, 0] }\n',
    );
    const s = loadScenario(join(dir, 's.yaml'));
    expect(s.gateways[0].wifi).toBeUndefined();
    expect(s.gateways[0].ble).toBeDefined();
  });

  it('an unknown field names the key meant, or the keys that go there (it named the field only; the fix was a hint to read the README)', () => {
    const d = minimal() as any;
    d.truth_stepp = '5s';
    d.gateways[0].colour = 'red';
    d.crowds[0].dwel_cv = 0.8;
    d.crowds.push({ type: 'flow', from: [0, 0], to: [10, 0], modes: { car: { per_hour: 1, speed: 8, speedcv: 0.1 } } });
    const m = problems(d);
    expect(m).toContain('(top level): unknown field "truth_stepp" (did you mean "truth_step"?)');
    expect(m).toContain('gateways[0]: unknown field "colour" (known: id, zone, position, reach, wifi, ble)');
    expect(m).toContain('crowds[0]: unknown field "dwel_cv" (did you mean "dwell_cv"?)');
    expect(m).toContain('crowds[1].modes.car: unknown field "speedcv" (did you mean "speed_cv"?)');
  });

  it("a scenario file's mistakes name the line of the key (they named the key path only: in a long file the tester had to count)", () => {
    const dir = mkdtempSync(join(tmpdir(), 'sim-scenario-'));
    const file = join(dir, 'market.yaml');
    const problemsOf = (text: string) => {
      writeFileSync(file, text);
      try {
        loadScenario(file);
      } catch (e) {
        expect(e).toBeInstanceOf(ScenarioError);
        const err = e as ScenarioError;
        return err.problems.map((_, i) => err.lineOf(i));
      }
      throw new Error('expected a ScenarioError');
    };
    const text = [
      'name: market', // 1
      'site: market',
      'duration: 10m',
      'truth_stepp: 5s', // 4: unknown
      'gateways:',
      '  - id: gw-1',
      '    zone: z',
      '    position: [0, 0]',
      '    wifi: { channels: [1, 6, 11], dwell: fast }', // 9
      'crowds:',
      '  - type: flow',
      '    from: [0, 0]',
      '    to: [100, 0]',
      '    modes:',
      '      car: { perHour: -3, speed: 8, people: [0, 2] }', // 15: an old camelCase key
      'fixed:',
      '  - { model: ibeacon, position: [1, 0], count: 2.5 }', // 17
      '',
    ].join('\n');
    expect(problemsOf(text)).toEqual([
      `${file}:4: (top level): unknown field "truth_stepp" (did you mean "truth_step"?)`,
      `${file}:9: gateways[0].wifi.dwell: must be a duration like 250ms, 60s, 15m, 1h30m or 7d (got "fast")`,
      `${file}:15: crowds[0].modes.car.per_hour: must be >= 0 (got -3)`,
      `${file}:17: fixed[0].count: must be a whole number (got 2.5)`,
    ]);
    // checked once the types are right: the people of a mode, a missing key (the mapping it belongs in)
    expect(
      problemsOf(
        text.replace('truth_stepp: 5s\n', '').replace('dwell: fast', 'dwell: 200ms').replace('perHour: -3', 'perHour: 3').replace('count: 2.5', 'count: 2'),
      ),
    ).toEqual([`${file}:14: crowds[0].modes.car.people: each car carries at least one person, like [1, 3] (got [0,2])`]);
    expect(problemsOf('name: x\nsite: s\ngateways:\n  - { zone: z, position: [0, 0] }\n')).toEqual([
      `${file}:1: duration: is required`,
      `${file}:4: gateways[0].id: is required`,
    ]);
    // Worded as the config files' problems (describeErrors), not the schema checker's "must NOT have
    // fewer than 4 items": how many it must hold, how many it holds, what was written.
    expect(
      problemsOf(
        [
          'name: ""', // 1
          'site: s',
          'duration: 1m',
          'gateways:',
          '  - { id: g, zone: z, position: [0, 0, 2], wifi: { channels: [] } }', // 5
          'people:',
          '  carry: [0.1, 0.2, 0.7]', // 7
          '',
        ].join('\n'),
      ),
    ).toEqual([
      `${file}:1: name: must not be empty (got "")`,
      `${file}:5: gateways[0].position: must be a list of exactly 2 items, not 3 (got [0,0,2])`,
      `${file}:5: gateways[0].wifi.channels: must be a list of at least 1 item, not 0 (got [])`,
      `${file}:7: people.carry: must be a list of exactly 4 items, not 3 (got [0.1,0.2,0.7])`,
    ]);
    // a JSON file too
    const json = join(dir, 'j.json');
    writeFileSync(
      json,
      '{\n  "name": "j",\n  "site": "s",\n  "duration": "1m",\n  "gateways": [{ "id": "g", "zone": "z", "position": [0, 0], "bogus": 1 }]\n}\n',
    );
    expect(() => loadScenario(json)).toThrow(`${json}:5: gateways[0]: unknown field "bogus" (known: id, zone, position, reach, wifi, ble)`);
    // a document given as an object has no lines
    expect(problems({ ...minimal(), bogus: 1 })).toMatch(/^file\.yaml: \(top level\): unknown field "bogus" \(known: name, description, site, /);
  });
});
