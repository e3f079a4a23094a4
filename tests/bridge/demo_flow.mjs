// The whole Rostra demo flow driven from Node.js through two `rostra bridge` processes (alice and bob),
// as a program in another runtime would use Rostra. Every line read from a bridge, and every request written
// to one, is validated against docs/rostra.schema.json with ajv (JSON Schema 2020-12).
//
// Usage:
//   node demo_flow.mjs --python PYTHON --node-modules DIR --server URL [--ca-file FILE] [--insecure]
// PYTHON runs `-m rostra.cli bridge`; DIR is a node_modules folder that holds ajv@8.
// On success the last stdout line is {"result":"passed", ...} and the exit status is 0; otherwise a
// {"result":"failed","reason":...} line and exit status 1.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';

const REQUEST_MS = 30000;
const EVENT_MS = 15000;
const IMAGE_URL = 'https://rostra.invalid/avatars/demo.png';

function parseArgs(argv) {
  const options = { bridgeArgs: [] };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    if (flag === '--python') options.python = argv[++i];
    else if (flag === '--node-modules') options.nodeModules = argv[++i];
    else if (flag === '--server' || flag === '--ca-file') options.bridgeArgs.push(flag, argv[++i]);
    else if (flag === '--insecure') options.bridgeArgs.push(flag);
    else throw new Error(`unknown argument ${flag}`);
  }
  if (!options.python || !options.nodeModules || !options.bridgeArgs.includes('--server')) {
    throw new Error('usage: demo_flow.mjs --python PYTHON --node-modules DIR --server URL [--ca-file FILE]');
  }
  return options;
}

function loadValidators(nodeModules) {
  const require = createRequire(path.join(path.resolve(nodeModules), 'resolve-from-here.js'));
  const Ajv2020 = require('ajv/dist/2020').default;
  // strict: false -- the document also holds Rostra's own top-level keys (responses, bridge, ...) and
  // msgspec's `discriminator` annotations, which are not JSON Schema keywords; anyOf does the validating.
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  const here = path.dirname(fileURLToPath(import.meta.url));
  const schema = JSON.parse(readFileSync(path.join(here, '..', '..', 'docs', 'rostra.schema.json'), 'utf8'));
  ajv.addSchema(schema, 'rostra');
  const get = (pointer) => {
    const validate = ajv.getSchema(`rostra#${pointer}`);
    if (!validate) throw new Error(`the schema has nothing at ${pointer}`);
    return (value, what) => {
      if (!validate(value)) {
        throw new Error(`${what} does not match ${pointer}: ${ajv.errorsText(validate.errors)}: ${JSON.stringify(value)}`);
      }
    };
  };
  const validators = {
    request: get('/bridge/request'),
    responseLine: get('/bridge/responseLine'),
    errorLine: get('/bridge/errorLine'),
    eventLine: get('/bridge/eventLine'),
    response: (method) => get(`/responses/${method}`),
  };
  // The validators must be able to say no, or every check below would prove nothing.
  for (const [kind, bad] of [
    ['responseLine', { id: 1, response: { statusCode: '200' } }],
    ['eventLine', { event: 'profile' }],
    ['errorLine', { id: 1, error: { message: 'no status code' } }],
    ['request', { id: 1, method: 'logout', params: { unknown: true } }],
  ]) {
    let refused = false;
    try {
      validators[kind](bad, 'a deliberately bad line');
    } catch {
      refused = true;
    }
    if (!refused) throw new Error(`the ${kind} schema accepts a bad line: ${JSON.stringify(bad)}`);
  }
  return validators;
}

class Bridge {
  constructor(name, options, validators, counter) {
    this.name = name;
    this.validators = validators;
    this.counter = counter;
    this.nextId = 1;
    this.pending = new Map();
    this.events = [];
    this.waiters = [];
    this.failure = null;
    this.child = spawn(options.python, ['-m', 'rostra.cli', 'bridge', ...options.bridgeArgs], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
    createInterface({ input: this.child.stdout }).on('line', (line) => this.onLine(line));
  }

  fail(error) {
    this.failure ??= error;
    for (const { reject } of this.pending.values()) reject(error);
    for (const { reject } of this.waiters) reject(error);
    this.pending.clear();
    this.waiters = [];
  }

  onLine(text) {
    try {
      this.handle(text);
    } catch (error) {
      this.fail(new Error(`${this.name}: ${error.message}`));
    }
  }

  handle(text) {
    const line = JSON.parse(text);
    this.counter.lines += 1;
    if ('event' in line) {
      this.validators.eventLine(line, 'an event line');
      this.events.push(line);
      for (const waiter of [...this.waiters]) {
        if (waiter.predicate(line)) {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
      return;
    }
    const entry = this.pending.get(line.id);
    if (!entry) throw new Error(`a line for no pending request: ${text}`);
    this.pending.delete(line.id);
    if ('response' in line) {
      this.validators.responseLine(line, 'a response line');
      this.validators.response(entry.method)(line.response, `the ${entry.method} response`);
      entry.resolve(line.response);
    } else {
      this.validators.errorLine(line, 'an error line');
      entry.reject(new Error(`${entry.method} failed: ${JSON.stringify(line.error)}`));
    }
  }

  request(method, params) {
    if (this.failure) return Promise.reject(this.failure);
    const request = { id: `${this.name}-${this.nextId++}`, method, ...(params ? { params } : {}) };
    this.validators.request(request, `the ${method} request`);
    return withTimeout(
      new Promise((resolve, reject) => {
        this.pending.set(request.id, { method, resolve, reject });
        this.child.stdin.write(`${JSON.stringify(request)}\n`);
      }),
      REQUEST_MS,
      `${this.name}: no answer to ${method}`,
    );
  }

  waitForEvent(description, predicate) {
    const seen = this.events.find(predicate);
    if (seen) return Promise.resolve(seen);
    if (this.failure) return Promise.reject(this.failure);
    return withTimeout(
      new Promise((resolve, reject) => this.waiters.push({ predicate, resolve, reject })),
      EVENT_MS,
      `${this.name}: no ${description} event`,
    );
  }

  async close() {
    this.child.stdin.end();
    const code = await withTimeout(this.exited, REQUEST_MS, `${this.name}: the bridge did not exit after EOF`);
    if (this.failure) throw this.failure;
    if (code !== 0) throw new Error(`${this.name}: the bridge exited with ${code}`);
  }
}

function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function demoFlow(alice, bob, steps) {
  const step = async (bridge, method, params) => {
    const response = await bridge.request(method, params);
    expect(response.statusCode === 200, `${method}: status ${response.statusCode}`);
    steps.push(method);
    return response;
  };
  const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e9).toString(36)}`;
  const metadata = { plan: 'demo', beta: true };
  const a = (await step(alice, 'register', { userIdentifier: `Alice${suffix}`, metadata })).data;
  const b = (await step(bob, 'register', { userIdentifier: `Bob${suffix}` })).data;
  await step(alice, 'connect', { username: a.username, password: a.password });
  await step(bob, 'connect', { username: b.username, password: b.password });
  await alice.waitForEvent('CONNECTED', (e) => e.event === 'connection' && e.status === 'CONNECTED');

  const stored = await step(alice, 'getMetadata');
  expect(isDeepStrictEqual(stored.data, metadata), `getMetadata: ${JSON.stringify(stored.data)}`);

  await step(alice, 'addContact', { jid: b.userJid });
  await step(bob, 'addContact', { jid: a.userJid });
  const friend = (jid) => (e) => e.event === 'contact' && e.data.userJid === jid && e.data.isFriend;
  await bob.waitForEvent('mutual contact', friend(a.userJid));
  await alice.waitForEvent('mutual contact', friend(b.userJid));
  const contacts = await step(bob, 'getContacts');
  expect(
    contacts.data.some((c) => c.userJid === a.userJid && c.isFriend && c.subscription === 'both'),
    `getContacts: ${JSON.stringify(contacts.data)}`,
  );

  const profile = {
    name: 'Alice 👩‍💻',
    status: 'Hello from Node <&>',
    mobileNumber: '+14155552671',
    email: 'alice@example.com',
    image: IMAGE_URL,
  };
  const updated = (await step(alice, 'setUserProfile', profile)).data;
  expect(updated.nickName === profile.name && updated.image === IMAGE_URL, `setUserProfile: ${JSON.stringify(updated)}`);
  await bob.waitForEvent(
    "alice's profile",
    (e) => e.event === 'profile' && isDeepStrictEqual(e.data, updated),
  );
  const fetched = (await step(bob, 'getUserProfile', { toUserJid: a.userJid })).data;
  expect(isDeepStrictEqual(fetched, updated), `getUserProfile: ${JSON.stringify(fetched)}`);

  await step(alice, 'logout');
  await alice.waitForEvent('LOGOUT', (e) => e.event === 'connection' && e.status === 'LOGOUT');
  await sleep(1100); // so that last seen counts the time since that logout, not "0: online"
  const seen = (await step(bob, 'getLastSeen', { toUserJid: a.userJid })).data;
  expect(seen.userJid === a.userJid && seen.seconds > 0, `getLastSeen: ${JSON.stringify(seen)}`);
  const me = await step(bob, 'getCurrentUserJid');
  expect(me.userJid === b.userJid, `getCurrentUserJid: ${JSON.stringify(me)}`);
  await step(bob, 'logout');
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const validators = loadValidators(options.nodeModules);
  const counter = { lines: 0 };
  const alice = new Bridge('alice', options, validators, counter);
  const bob = new Bridge('bob', options, validators, counter);
  const steps = [];
  try {
    await demoFlow(alice, bob, steps);
    await alice.close();
    await bob.close();
  } catch (error) {
    alice.child.kill();
    bob.child.kill();
    throw error;
  }
  console.log(JSON.stringify({ result: 'passed', steps, linesValidated: counter.lines }));
}

main().catch((error) => {
  console.log(JSON.stringify({ result: 'failed', reason: error.message }));
  process.exitCode = 1;
});
