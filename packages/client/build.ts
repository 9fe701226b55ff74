/**
 * Builds the package into dist/ (`npm run build -w @gatehouse/client`; `npm pack` runs it first):
 *
 *   index.{mjs,cjs}   the browser-safe client          @gatehouse/client
 *   node.{mjs,cjs}    Node transport, sign-in, WAV      @gatehouse/client/node
 *   react.{mjs,cjs}   React bindings                    @gatehouse/client/react
 *   cli.cjs           the gatehouse command (bin/gatehouse.cjs runs it)
 *   types/            declarations, the protocol's included
 *
 * The protocol (../../protocol) is not a package: it is bundled in. The core is bundled once, into index: the other
 * entries import it as '@gatehouse/client', so a program that uses two entries has one GatehouseClient class (and
 * one set of types), not two that cannot be mixed.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { build, type Plugin } from 'esbuild';

const PACKAGE = __dirname;
const ROOT = path.resolve(PACKAGE, '..', '..');
const SRC = path.join(PACKAGE, 'src');
const DIST = path.join(PACKAGE, 'dist');
const PROTOCOL = path.join(ROOT, 'protocol');

const pkg = JSON.parse(readFileSync(path.join(PACKAGE, 'package.json'), 'utf8')) as {
  name: string;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
};
const packages = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})];
// A package and its subpaths (react/jsx-runtime, @aws-sdk/...) stay imports; Node built-ins too.
const external = [...packages, ...packages.map((p) => `${p}/*`), 'node:*'];

/** The files of the browser entry: bundled into index only. */
const CORE = new Set(['index', 'client', 'emitter', 'format', 'resample', 'rooms', 'speech'].map((name) => path.join(SRC, `${name}.ts`)));

/** In every other entry, an import of a core file becomes an import of the package itself. */
const coreAsPackage: Plugin = {
  name: 'core-as-package',
  setup(b) {
    b.onResolve({ filter: /^\./ }, (args) => {
      if (CORE.has(args.importer)) return undefined;
      const file = path.resolve(args.resolveDir, args.path);
      return CORE.has(`${file}.ts`) || CORE.has(file) ? { path: pkg.name, external: true } : undefined;
    });
  },
};

const ENTRIES = { index: 'index.ts', node: 'node.ts', react: 'react/index.ts' } as const;

async function bundle(): Promise<void> {
  for (const [name, entry] of Object.entries(ENTRIES)) {
    for (const format of ['esm', 'cjs'] as const) {
      await build({
        entryPoints: [path.join(SRC, entry)],
        outfile: path.join(DIST, `${name}.${format === 'esm' ? 'mjs' : 'cjs'}`),
        bundle: true,
        format,
        platform: name === 'node' ? 'node' : 'neutral',
        target: 'es2022',
        external,
        plugins: name === 'index' ? [] : [coreAsPackage],
        jsx: 'automatic',
        legalComments: 'none',
        logLevel: 'warning',
      });
    }
  }
  await build({
    entryPoints: [path.join(SRC, 'cli.ts')],
    outfile: path.join(DIST, 'cli.cjs'),
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    external,
    plugins: [coreAsPackage],
    legalComments: 'none',
    logLevel: 'warning',
  });
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const file = path.join(dir, name);
    return statSync(file).isDirectory() ? walk(file) : [file];
  });
}

/**
 * Declarations from tsc, laid out as the package ships them: src/x.d.ts as types/x.d.ts and protocol/x.d.ts as
 * types/protocol/x.d.ts, with the relative imports between them rewritten to match.
 */
function declarations(): void {
  const out = mkdtempSync(path.join(tmpdir(), 'gatehouse-client-types-'));
  try {
    const tsc = path.join(path.dirname(require.resolve('typescript/package.json')), 'bin', 'tsc');
    execFileSync(process.execPath, [tsc, '-p', path.join(PACKAGE, 'tsconfig.build.json'), '--outDir', out], { stdio: 'inherit' });
    const types = path.join(DIST, 'types');
    const place = (emitted: string): string | undefined => {
      const source = path.join(ROOT, path.relative(out, emitted));
      if (source.startsWith(SRC + path.sep)) return path.join(types, path.relative(SRC, source));
      if (source.startsWith(PROTOCOL + path.sep)) return path.join(types, 'protocol', path.relative(PROTOCOL, source));
      return undefined;
    };
    for (const emitted of walk(out)) {
      const target = place(emitted);
      if (!target) throw new Error(`A declaration from outside the package and the protocol: ${path.relative(out, emitted)}`);
      const text = readFileSync(emitted, 'utf8').replace(/((?:from|import\()\s*)(['"])(\.[^'"]*)\2/g, (_all, lead: string, quote: string, spec: string) => {
        const base = path.resolve(path.dirname(emitted), spec);
        const moved = place(existsSync(`${base}.d.ts`) ? `${base}.d.ts` : path.join(base, 'index.d.ts'));
        if (!moved) throw new Error(`${path.relative(out, emitted)} imports ${spec}, which the package does not ship`);
        const relative = path.relative(path.dirname(target), moved).replace(/\.d\.ts$/, '');
        return `${lead}${quote}${relative.startsWith('.') ? relative : `./${relative}`}${quote}`;
      });
      mkdirSync(path.dirname(target), { recursive: true });
      writeFileSync(target, text);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  rmSync(DIST, { recursive: true, force: true });
  await bundle();
  declarations();
  for (const name of Object.keys(ENTRIES)) if (!existsSync(path.join(DIST, 'types', `${name === 'react' ? 'react/index' : name}.d.ts`))) throw new Error(`No declarations for ${name}`);
  // stderr: `npm pack --json` prints its answer on stdout.
  process.stderr.write(`${pkg.name} built in ${path.relative(process.cwd(), DIST) || DIST} (${Date.now() - started} ms)\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
