// The simulator's phone models reproduce what the public single-phone captures show: addresses per
// minute and the structure of the probe bursts (simulator/phones.ts measures both the same way).
// The measured figures live beside each model in simulator/devices.ts (`measured`); the first test
// re-measures them from the captures, the second checks the simulated phone against them.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { MODELS, type MeasuredPhone } from '../simulator/devices.ts';
import { BURST_PHONE, gatewayBurstAddresses, receiverBurstAddresses } from '../simulator/evaluate.ts';
import { burstAddressesHeard, captureFrames, phoneFigures, simulatedPhoneFrames, type PhoneFigures } from '../simulator/phones.ts';
import { loadScenario } from '../simulator/scenario.ts';
import { capturesDir } from './support/need.ts';

const SUITE = 'simulator phone models against single-phone captures';
const PHONES = Object.values(MODELS).filter((m) => m.wifi?.measured);
const dir = capturesDir(SUITE);

/**
 * Tolerance: two standard errors of the difference of the two means (the capture's error and the
 * simulation's combined), and never tighter than 10 % of the measured value.
 */
function tolerance(measured: readonly [number, number], simSe: number): number {
  return Math.max(2 * Math.hypot(measured[1], simSe), 0.1 * measured[0]);
}

describe(SUITE, () => {
  it('models one phone of each of the three captures', () => {
    expect(PHONES.map((m) => m.wifi!.measured!.capture).sort()).toEqual([
      'OppoFindX3Neo-A_anonymized.pcap',
      'S21Ultra-M_anonymized.pcap',
      'iPhone11-B_anonymized.pcap',
    ]);
  });

  it.skipIf(!dir).each(PHONES.map((m) => [m.id, m.wifi!.measured!] as const))(
    '%s: the figures written beside the model are those of its capture',
    async (_id, measured) => {
      const real = await phoneFigures(await captureFrames(join(dir!, 'wifi', measured.capture)), { ignoreFcs: true });
      const written: PhoneFigures = {
        windows: measured.windows,
        bursts: measured.bursts,
        addressesPerMinute: measured.addressesPerMinute[0],
        newAddressesPerMinute: measured.newAddressesPerMinute[0],
        addressesPerBurst: measured.addressesPerBurst[0],
        probesPerBurst: measured.probesPerBurst[0],
        burstIntervalS: measured.burstIntervalS[0],
        se: {
          addressesPerMinute: measured.addressesPerMinute[1],
          newAddressesPerMinute: measured.newAddressesPerMinute[1],
          addressesPerBurst: measured.addressesPerBurst[1],
          probesPerBurst: measured.probesPerBurst[1],
          burstIntervalS: measured.burstIntervalS[1],
        },
      };
      expect(real).toEqual(written);
    },
  );

  it.each(PHONES.map((m) => [m.id, m.wifi!.measured!] as const))(
    '%s: six simulated hours of one phone match the capture',
    async (id, measured: MeasuredPhone) => {
      const sim = await phoneFigures(simulatedPhoneFrames(id, { seed: 1, durationS: 6 * 3600 }));
      const checks: Array<[string, number, readonly [number, number], number]> = [
        // What the firmware counts per minute from the model, against the phone's new addresses per
        // minute: the capture's per-minute count also depends on where its scans fall against the
        // minute (OppoFindX3Neo-A), the simulated phone's scans fall anywhere.
        ['addresses per minute', sim.addressesPerMinute, measured.newAddressesPerMinute, sim.se.addressesPerMinute],
        ['addresses per burst', sim.addressesPerBurst, measured.addressesPerBurst, sim.se.addressesPerBurst],
        ['probes per burst', sim.probesPerBurst, measured.probesPerBurst, sim.se.probesPerBurst],
        ['seconds between bursts', sim.burstIntervalS, measured.burstIntervalS, sim.se.burstIntervalS],
      ];
      for (const [what, simulated, real, simSe] of checks) {
        const tol = tolerance(real, simSe);
        expect(
          Math.abs(simulated - real[0]),
          `${id} ${what}: simulated ${simulated}, measured ${real[0]} ± ${real[1]} (tolerance ${tol.toFixed(2)})`,
        ).toBeLessThanOrEqual(tol);
      }
    },
  );

  it("the addresses of one burst a gateway hears, as evaluate gives the firmware: hopping over 1, 6 and 11 hears about a third of the fixed sniffers' figure", () => {
    const hopping = receiverBurstAddresses({ channels: [1, 6, 11], dwellMs: 200, switchMs: 5 });
    expect(hopping).toBeGreaterThanOrEqual(2.2);
    expect(hopping).toBeLessThanOrEqual(2.6);
    // the same phone beside three sniffers fixed on 1, 6 and 11 (its capture's set-up; the real one: 7.3-7.5)
    const fixed = burstAddressesHeard(simulatedPhoneFrames(BURST_PHONE.model, { seed: 1, durationS: BURST_PHONE.durationS }));
    expect(fixed.mean).toBeGreaterThan(5.5);
    expect(hopping).toBeLessThan(fixed.mean / 2);
    // a scenario's gateways get their own receiver's figure unless one is given for all
    const s = loadScenario('kingsday-square', { durationS: 60 });
    expect(gatewayBurstAddresses(s)).toEqual(s.gateways.map((g) => receiverBurstAddresses(g.wifi!)));
    expect(gatewayBurstAddresses(s, { burstAddresses: 7 })).toEqual(s.gateways.map(() => 7));
  });
});
