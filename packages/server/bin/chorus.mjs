#!/usr/bin/env node
// Thin launcher so `npx chorus` and `npm start` run the compiled CLI.
let cli;
try {
  cli = await import('../dist/cli/index.js');
} catch (error) {
  if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/cli/index.js')) {
    process.stderr.write('chorus: not built yet; run "npm install" (or "npm run build") at the repository root\n');
    process.exit(1);
  }
  throw error;
}
process.exitCode = await cli.main(process.argv.slice(2));
