// Makes sure the system programs the tests drive are installed (runs as `npm test`'s pretest).
// On Debian as root it installs what is missing; anywhere else it says what to install and
// fails: a test run that silently skips the browser tests would look green and prove nothing.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';

/** Programs the test suite needs. Add a row to require another one (e.g. redis-server). */
const REQUIRED = [
  { binary: '/usr/bin/chromium', debianPackage: 'chromium', why: 'the browser example tests' },
  { binary: '/usr/bin/redis-server', debianPackage: 'redis-server', why: 'the Redis engine and cluster tests' },
];

const missing = REQUIRED.filter((tool) => !isExecutable(tool.binary));
if (missing.length === 0) process.exit(0);

const packages = [...new Set(missing.map((tool) => tool.debianPackage))];
const isDebian = existsSync('/etc/debian_version');
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

if (!isDebian || !isRoot) {
  const names = missing.map((tool) => `${tool.debianPackage} (${tool.binary})`).join(', ');
  console.error(`npm test needs ${names}: run "sudo apt-get install -y ${packages.join(' ')}" (Debian) and retry`);
  process.exit(1);
}

console.error(`provision: installing ${packages.join(' ')} (needed by ${missing.map((tool) => tool.why).join(', ')})`);
run('apt-get', ['update']);
run('apt-get', ['install', '-y', ...packages]);

const stillMissing = missing.filter((tool) => !isExecutable(tool.binary));
if (stillMissing.length > 0) {
  console.error(`provision: installed ${packages.join(' ')} but ${stillMissing.map((tool) => tool.binary).join(', ')} is still missing`);
  process.exit(1);
}

function run(command, args) {
  const result = spawnSync(command, args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (result.error) {
    console.error(`provision: could not run ${command}: ${result.error.message}`);
    process.exit(1);
  }
  if (result.status !== 0) {
    console.error(`provision: "${command} ${args.join(' ')}" failed with ${result.status === null ? `signal ${result.signal}` : `exit code ${result.status}`}`);
    process.exit(1);
  }
}

function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
