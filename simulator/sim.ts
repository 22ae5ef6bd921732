// The simulation engine: people arrive, move and leave; their devices scan and advertise; each
// gateway's radios hear what reaches them on the channel they are tuned to. A discrete-event loop
// (one queue ordered by time) yields frames in time order across all gateways, and the ground truth
// of every window as it closes. Memory holds the people present, never the frames.
//
// The parts, each in engine/:
//   population.ts  who is there: arrivals, movement, departures, the devices each carries
//   devices.ts     what each device does in time: scans, probes, advertisements, address changes
//   emission.ts    which gateway captures each frame (signal, receiver, fading), and the frame bytes
//   accounting.ts  the truth: who and what was in reach, what each capture holds, per window
//   queue.ts       the time-ordered task queue; gateways.ts the gateways' state; types.ts the events
import { TruthAccounting } from './engine/accounting.ts';
import { DeviceBehaviour, type Device } from './engine/devices.ts';
import { FrameEmitter } from './engine/emission.ts';
import { gatewayStates } from './engine/gateways.ts';
import { Population } from './engine/population.ts';
import { TASK, TaskQueue } from './engine/queue.ts';
import type { EngineOptions, SimEvent, SimTotals } from './engine/types.ts';
import { Rng } from './rng.ts';
import type { Scenario } from './scenario.ts';

export { bleLinkType, captureInterfaces, gatewayReachM, REFERENCE_PHONE_DBM } from './engine/gateways.ts';
export type { BleLink, EngineOptions, EngineTap, FrameEvent, Radio, SimEvent, SimTotals, WindowEvent } from './engine/types.ts';

/**
 * Runs a scenario, yielding every captured frame (all gateways, in time order) and, at each window
 * end, the ground truth of every gateway. Returns the run's totals when it finishes. Deterministic
 * for a seed: the same seed gives the same events, byte for byte.
 */
export function* runScenario(s: Scenario, opts: EngineOptions): Generator<SimEvent, SimTotals> {
  const root = new Rng(opts.seed);
  const air = root.fork('air');
  const endS = s.durationS;
  // Truth samples at most a window apart: a window shorter than the step held no sample, and read
  // nobody in reach while its captures held their frames.
  const step = Math.min(s.truthStepS, s.windowS);
  const gateways = gatewayStates(s, root);
  const queue = new TaskQueue();
  const truth = new TruthAccounting(s, s.environment, gateways, opts.tap);
  const devices = new DeviceBehaviour(s.environment, root, queue, gateways);
  const population = new Population(s, root, queue, devices, (p) => truth.flowPath(p));
  const emit = new FrameEmitter(s.environment, gateways, air, opts.bleLink ?? 'll', s.startMs, truth, opts.tap);

  population.start();
  queue.push(0, TASK.TICK, null);
  queue.push(truth.firstWindowEndS(), TASK.WINDOW, null);

  for (;;) {
    const task = queue.pop();
    if (!task) break;
    const t = task.t;
    if (t > endS || (t === endS && task.kind !== TASK.WINDOW)) continue;
    switch (task.kind) {
      case TASK.ARRIVAL:
        population.arrival(task.ref, t);
        break;
      case TASK.SCAN: {
        const d = task.ref as Device;
        if (t < d.agent.departS) devices.startScan(d, t);
        break;
      }
      case TASK.PROBE: {
        const d = task.ref as Device;
        if (t >= d.agent.departS) break;
        yield* emit.probe(d, t, devices.probe(d));
        devices.afterProbe(d, t);
        break;
      }
      case TASK.ADVERT: {
        const d = task.ref as Device;
        if (t >= d.agent.departS) break;
        devices.advertise(d, t);
        yield* emit.advert(d, t);
        devices.afterAdvert(d, t);
        break;
      }
      case TASK.TICK: {
        population.prune(t);
        truth.sample(population.agents, t);
        if (t + step < endS) queue.push(t + step, TASK.TICK, null);
        break;
      }
      case TASK.WINDOW: {
        const { windows, nextEndS } = truth.closeWindow(t);
        yield { type: 'window', windows };
        if (nextEndS !== null) queue.push(nextEndS, TASK.WINDOW, null);
        break;
      }
    }
  }
  return { people: population.people, devices: devices.created };
}
