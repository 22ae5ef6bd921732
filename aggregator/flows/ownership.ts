// Which aggregator computes the flows of a corridor group, when several run (shared subscriptions
// split the counts between them, but a group's sketches must meet in one place).
//
// Every aggregator with corridors publishes a retained "alive" message on
// presence/v1/_aggregators/{instance}/alive (instance: the first 16 hex digits of SHA-256 of its
// MQTT client id) naming the groups it is configured for, with a last will that clears it (an empty
// retained message) when its connection is lost; a clean stop clears it too. Every such aggregator
// subscribes to presence/v1/_aggregators/+/alive and to the sketches of all gateways (a plain
// subscription: each instance receives every sketch). Among the live instances configured for a
// group, the owner is the one with the smallest SHA-256(group "/" instance) (rendezvous hashing:
// groups spread over instances, and when an instance goes away only its groups move). An instance
// computes only the groups it owns; it holds the sketches of the others too, standing by (see
// ./intake.ts: same clock and drop rule plus one interval, histories kept, nothing written). When the
// owner goes away, the next one in that order takes the group over from its held sketches: the
// interval in progress at the change is written, and the last due one again with the same values.
import { createHash } from 'node:crypto';
import { type AliveMessage, CONTRACT_VERSION } from '../../contract/index.ts';

// The topics are the contract's (contract/topics.ts); re-exported for the flows code and its tests.
export { ALIVE_FILTER, aliveInstance, aliveTopic } from '../../contract/index.ts';

export function instanceId(clientId: string): string {
  return createHash('sha256').update(clientId).digest('hex').slice(0, 16);
}

function rank(group: string, instance: string): string {
  return createHash('sha256').update(`${group}/${instance}`).digest('hex');
}

/** The owner of a group among the instances (instance -> groups it is configured for). */
export function ownerOf(group: string, alive: Map<string, readonly string[]>): string | null {
  let best: string | null = null;
  let bestRank = '';
  for (const [inst, groups] of alive) {
    if (!groups.includes(group)) continue;
    const r = rank(group, inst);
    if (best === null || r < bestRank) {
      best = inst;
      bestRank = r;
    }
  }
  return best;
}

/** The live instances as retained alive messages tell them; this instance is always in it. */
export class Ownership {
  private readonly alive = new Map<string, readonly string[]>();

  constructor(
    readonly self: string,
    readonly groups: readonly string[],
  ) {
    this.alive.set(self, groups);
  }

  /** The alive payload of this instance. */
  payload(): Buffer {
    const m: AliveMessage = { v: CONTRACT_VERSION, instance: this.self, groups: this.groups };
    return Buffer.from(JSON.stringify(m));
  }

  /** An alive message (empty: that instance went away). Returns true when the set changed. */
  update(instance: string, payload: Buffer): boolean {
    if (instance === this.self) return false;
    if (payload.length === 0) return this.alive.delete(instance);
    let groups: string[] = [];
    try {
      const v = JSON.parse(payload.toString('utf8'));
      if (Array.isArray(v?.groups)) groups = v.groups.filter((g: unknown) => typeof g === 'string');
    } catch {
      return false;
    }
    const before = this.alive.get(instance);
    this.alive.set(instance, groups);
    return JSON.stringify(before) !== JSON.stringify(groups);
  }

  /** The groups this instance owns now. */
  owned(): string[] {
    return this.groups.filter((g) => ownerOf(g, this.alive) === this.self);
  }

  get instances(): number {
    return this.alive.size;
  }
}
