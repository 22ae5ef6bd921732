// A stand-in for `tcpdump -U -w -` on a live interface, for bench/gateway.ts (plain JavaScript, not
// a bench: bench/index.ts runs only *.ts). Usage: node live-capture-writer.mjs FILE.pcapng MODE [BLOCK_MS]
// Writes the pcapng file's header at once, then each Enhanced Packet Block at the wall time its
// capture timestamp falls due (relative to the first packet), re-stamped with the wall time it fell
// due (as a live capture stamps arrival), EACH PACKET WITH ITS OWN write(2), as `tcpdump -U` does
// (pcap_dump_flush after every packet). MODE:
//   packet  every packet is written when it is due: writes spread evenly in time (at 10,000
//           frames/s one every 0.1 ms, as far as the sleep's resolution allows: a few packets per
//           wake-up at worst). The worst case for a reader that wakes on every readable event.
//   block   packets are held and written in a burst every BLOCK_MS (default 100): what tcpdump does
//           on Linux, where libpcap's TPACKET_V3 ring hands it packets a block at a time (see
//           bench/gateway.ts for the sizes and timeouts this models).
// Sleeps with Atomics.wait (sub-millisecond); exits when the file is written, or quietly on EPIPE.
import { readFileSync, writeSync } from 'node:fs';

const [file, mode = 'packet', blockArg = '100'] = process.argv.slice(2);
if (!file || (mode !== 'packet' && mode !== 'block')) {
  process.stderr.write('usage: live-capture-writer.mjs FILE.pcapng packet|block [BLOCK_MS]\n');
  process.exit(2);
}
const blockMs = Number(blockArg);
const buf = readFileSync(file);
if (buf.readUInt32LE(0) !== 0x0a0d0d0a || buf.readUInt32LE(8) !== 0x1a2b3c4d) {
  process.stderr.write(`${file}: not a little-endian pcapng file\n`);
  process.exit(2);
}
// Blocks: the header (everything before the first Enhanced Packet Block) and the packets (µs timestamps).
let off = 0;
let headerEnd = -1;
const starts = [];
while (off + 12 <= buf.length) {
  const type = buf.readUInt32LE(off);
  const len = buf.readUInt32LE(off + 4);
  if (type === 6) {
    if (headerEnd < 0) headerEnd = off;
    starts.push(off);
  }
  off += len;
}
const tsUs = (o) => buf.readUInt32LE(o + 12) * 4294967296 + buf.readUInt32LE(o + 16);
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const sleep = (ms) => {
  if (ms > 0) Atomics.wait(sleeper, 0, 0, ms);
};
function write(b) {
  let done = 0;
  while (done < b.length) {
    try {
      done += writeSync(1, b, done);
    } catch (e) {
      if (e.code === 'EAGAIN') {
        sleep(1); // a non-blocking pipe or socket that is full: wait for the reader, as a blocking write would
        continue;
      }
      if (e.code === 'EPIPE') process.exit(0);
      throw e;
    }
  }
}
write(buf.subarray(0, headerEnd));
const t0 = performance.now();
const wall0Us = Date.now() * 1000;
const ts0 = tsUs(starts[0]);
let i = 0;
while (i < starts.length) {
  const now = performance.now() - t0; // ms since the first packet
  // packet mode: what is due now; block mode: what is due by the end of the current block period
  const limitMs = mode === 'packet' ? now : Math.floor(now / blockMs) * blockMs;
  while (i < starts.length && (tsUs(starts[i]) - ts0) / 1000 <= limitMs) {
    const o = starts[i];
    const len = buf.readUInt32LE(o + 4);
    const stamp = wall0Us + (tsUs(o) - ts0); // the wall time it was due: when a live capture would have stamped it
    buf.writeUInt32LE(Math.floor(stamp / 4294967296), o + 12);
    buf.writeUInt32LE(stamp % 4294967296, o + 16);
    write(buf.subarray(o, o + len));
    i++;
  }
  if (i >= starts.length) break;
  const nextMs = (tsUs(starts[i]) - ts0) / 1000;
  const wakeMs = mode === 'packet' ? nextMs : (Math.floor(nextMs / blockMs) + 1) * blockMs;
  sleep(wakeMs - (performance.now() - t0));
}
