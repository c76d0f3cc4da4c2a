// Bundles the example pages that import npm packages (the collaborative editor: Yjs,
// y-websocket, CodeMirror 6) into examples/*/dist/, served with the pages. Run by `npm run build`.
import { build } from 'esbuild';
import { URL, fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

await build({
  entryPoints: [`${root}examples/editor/editor.js`],
  outfile: `${root}examples/editor/dist/editor.js`,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  minify: true,
  logLevel: 'warning',
});
console.log('build-examples: wrote examples/editor/dist/editor.js');
