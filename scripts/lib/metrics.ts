// Metrics every presence-counter component exposes the same way: the standard Node process metrics
// under their usual names (process_cpu_seconds_total, nodejs_heap_size_used_bytes, ...: no project
// prefix, so stock dashboards and alerts work) and `presence_build_info{component,version,node,contract}` = 1.
import { Gauge, collectDefaultMetrics, type Registry } from 'prom-client';
import { CONTRACT_VERSION } from '../../contract/index.ts';
import { VERSION } from '../../gateway/status.ts';

export function addStandardMetrics(registry: Registry, component: string, processMetrics: boolean): void {
  const info = new Gauge({
    name: 'presence_build_info',
    help: 'Always 1; the labels say which build runs: component, package version, Node version, contract version',
    labelNames: ['component', 'version', 'node', 'contract'],
    registers: [registry],
  });
  info.set({ component, version: VERSION, node: process.version, contract: String(CONTRACT_VERSION) }, 1);
  if (processMetrics) collectDefaultMetrics({ register: registry });
}
