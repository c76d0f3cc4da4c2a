// Bundles the client SDK (packages/client/src, with the @chorus/protocol parts it uses) into one
// browser ES module, packages/client/dist/chorus-client.js, which the server serves at /client.js.
// Run by `npm run build` (and so by prepare, prestart and typecheck).
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { URL, fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const { version } = JSON.parse(readFileSync(`${root}packages/client/package.json`, 'utf8'));
const outfile = `${root}packages/client/dist/chorus-client.js`;

await build({
  entryPoints: [`${root}packages/client/src/index.ts`],
  outfile,
  bundle: true,
  format: 'esm',
  // platform browser: a Node-only import in the SDK fails the build instead of reaching browsers.
  platform: 'browser',
  target: 'es2020',
  sourcemap: true,
  minify: false,
  // From the TypeScript sources, so the bundle does not depend on tsc's output being current.
  alias: { '@chorus/protocol': `${root}packages/protocol/src/index.ts` },
  banner: { js: `/* @chorus/client ${version}: the Chorus v1 SDK as one ES module (docs/client.md). MIT. */` },
  logLevel: 'warning',
});
console.log(`build-client: wrote ${outfile.slice(root.length)}`);
