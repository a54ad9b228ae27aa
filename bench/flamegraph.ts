/**
 * A V8 CPU profile (`node --cpu-prof`, a `.cpuprofile`) as a flame graph in SVG: one box per
 * stack frame, as wide as the share of samples it was on the stack for, callers below callees
 * (Brendan Gregg's layout). No library: the npm registry has no kept-up converter to SVG (0x and
 * flamebearer write HTML pages of their own), and the format is small. Hover a box for its
 * function, place and share. Idle samples are left out, so the widths are shares of busy time.
 */

type CallFrame = { functionName: string; url: string; lineNumber: number; columnNumber: number };
type ProfileNode = { id: number; callFrame: CallFrame; children?: number[] };
export type CpuProfile = { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] };

type Frame = { name: string; kind: Kind; micros: number; children: Map<string, Frame> };
type Kind = 'portcullis' | 'engine' | 'library' | 'node' | 'vm';

const ROOT = new URL('../', import.meta.url).href;

function kindOf(frame: CallFrame): Kind {
  const { url, functionName } = frame;
  if (!url) return functionName.startsWith('(') ? 'vm' : 'node';
  if (url.startsWith('node:')) return 'node';
  if (url.includes('/node_modules/oidc-provider/') || url.includes('/node_modules/jose/')) return 'engine';
  if (url.includes('/node_modules/')) return 'library';
  return url.startsWith(ROOT) || url.startsWith(new URL(ROOT).pathname) ? 'portcullis' : 'library';
}

function label(frame: CallFrame): string {
  const name = frame.functionName || '(anonymous)';
  if (!frame.url) return name;
  const place = frame.url
    .replace(ROOT, '')
    .replace(new URL(ROOT).pathname, '')
    .replace(/^.*node_modules\//, '');
  return `${name} ${place}:${frame.lineNumber + 1}`;
}

/** Merges the profile's call tree by frame label, weighting each node by its sampled time in [from, to] (µs, the profile's clock). */
function mergedTree(profile: CpuProfile, from = -Infinity, to = Infinity): Frame {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const selfMicros = new Map<number, number>();
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i];
    const next = i + 1 < profile.timeDeltas.length ? profile.timeDeltas[i + 1] : 0;
    if (t < from || t > to) continue;
    selfMicros.set(profile.samples[i], (selfMicros.get(profile.samples[i]) ?? 0) + Math.max(0, next));
  }
  const root: Frame = { name: 'all', kind: 'vm', micros: 0, children: new Map() };
  for (const [id, micros] of selfMicros) {
    const stack: CallFrame[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) stack.push(byId.get(at)!.callFrame);
    stack.pop(); // V8's (root)
    if (stack[0]?.functionName === '(idle)') continue;
    root.micros += micros;
    let frame = root;
    for (const call of stack.reverse()) {
      const name = label(call);
      let child = frame.children.get(name);
      if (!child) frame.children.set(name, (child = { name, kind: kindOf(call), micros: 0, children: new Map() }));
      child.micros += micros;
      frame = child;
    }
  }
  return root;
}

const COLOURS: Record<Kind, [number, number]> = {
  portcullis: [210, 70], // blue: our own code
  engine: [28, 90], // orange: oidc-provider and jose
  library: [95, 45], // green: other packages (koa, knex, pino…)
  node: [0, 0], // grey: Node's own JavaScript
  vm: [0, 65], // red: GC, program, native
};

const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** The SVG text. `from`/`to` keep only the samples taken in that window (µs on the profile's clock). */
export function flameGraphSvg(profile: CpuProfile, options: { title: string; subtitle?: string; from?: number; to?: number }): string {
  const root = mergedTree(profile, options.from, options.to);
  const width = 1600;
  const rowHeight = 16;
  const top = 50;
  const boxes: Array<{ frame: Frame; x: number; w: number; level: number }> = [];
  const scale = (width - 20) / root.micros;
  const walk = (frame: Frame, x: number, level: number) => {
    const w = frame.micros * scale;
    if (w < 0.3) return; // narrower than a third of a pixel: left out
    boxes.push({ frame, x, w, level });
    let childX = x;
    for (const child of [...frame.children.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      walk(child, childX, level + 1);
      childX += child.micros * scale;
    }
  };
  walk(root, 10, 0);
  const depth = Math.max(...boxes.map((box) => box.level));
  const height = top + (depth + 1) * rowHeight + 30;
  const body = boxes.map(({ frame, x, w, level }) => {
    const y = height - 30 - (level + 1) * rowHeight;
    const [hue, saturation] = COLOURS[frame.kind];
    const lightness = 55 + ((frame.name.length * 7) % 20);
    const share = ((frame.micros / root.micros) * 100).toFixed(2);
    const text = w > 40 ? escape(frame.name.slice(0, Math.floor(w / 6.5))) : '';
    return (
      `<g><title>${escape(frame.name)} (${share} %, ${(frame.micros / 1000).toFixed(1)} ms)</title>` +
      `<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${rowHeight - 1}" fill="hsl(${hue},${saturation}%,${lightness}%)" rx="2"/>` +
      (text ? `<text x="${(x + 3).toFixed(1)}" y="${y + 11.5}">${text}</text>` : '') +
      '</g>'
    );
  });
  const legend = (Object.entries(COLOURS) as Array<[Kind, [number, number]]>)
    .map(([kind, [hue, saturation]], i) => {
      const x = 10 + i * 150;
      return `<rect x="${x}" y="${height - 20}" width="12" height="12" fill="hsl(${hue},${saturation}%,62%)"/><text x="${x + 16}" y="${height - 10}">${kind === 'vm' ? 'V8: GC, program, native' : kind === 'engine' ? 'oidc-provider, jose' : kind === 'node' ? "Node's JavaScript" : kind === 'library' ? 'other packages' : 'Portcullis'}</text>`;
    })
    .join('');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="monospace" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="20" font-size="15">${escape(options.title)}</text>`,
    `<text x="10" y="38" fill="#555">${escape(options.subtitle ?? '')} busy ${(root.micros / 1000).toFixed(0)} ms sampled; hover a box for its share</text>`,
    ...body,
    legend,
    '</svg>',
    '',
  ].join('\n');
}
