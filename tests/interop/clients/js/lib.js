'use strict'
// Shared by the KafkaJS scripts the interop tests run (tests/interop/clients/test_kafkajs.py).
// Records travel as the JSON lines of tests/interop/clients/canonical.py: hex strings, null for null.
const { Kafka } = require('kafkajs')

// KafkaJS's own console logger writes INFO to stdout; stdout carries the JSON lines, so every log
// line goes to stderr (the test shows it when something fails). The level stays KafkaJS's default.
const toStderr = () => ({ namespace, label, log }) => {
  const { message, ...rest } = log
  process.stderr.write(`kafkajs ${label} [${namespace}] ${message} ${JSON.stringify(rest)}\n`)
}

// `extra`: client options a test sets (e.g. {retry: {retries: 1}}); everything else is KafkaJS's default.
function kafka (bootstrap, extra = {}) {
  return new Kafka({ clientId: 'kop-fast-interop', brokers: bootstrap.split(','), logCreator: toStderr, ...extra })
}

const unhex = s => (s === null || s === undefined ? null : Buffer.from(s, 'hex'))
const hex = b => (b === null || b === undefined ? null : Buffer.from(b).toString('hex'))

// canonical -> a KafkaJS message. KafkaJS headers are an object: a repeated name takes an array of
// values (so repeated names come out grouped: canonical records never interleave them).
function toMessage (obj) {
  const headers = {}
  for (const [name, value] of obj.headers || []) {
    const v = unhex(value)
    if (!(name in headers)) headers[name] = v
    else if (Array.isArray(headers[name])) headers[name].push(v)
    else headers[name] = [headers[name], v]
  }
  const message = { key: unhex(obj.key), value: unhex(obj.value), headers, timestamp: String(obj.timestamp) }
  if (obj.partition !== undefined) message.partition = obj.partition
  return message
}

// A consumed KafkaJS message -> canonical (plus where it was read).
function fromMessage (topic, partition, message) {
  const headers = []
  for (const [name, value] of Object.entries(message.headers || {})) {
    for (const v of Array.isArray(value) ? value : [value]) headers.push([name, hex(v)])
  }
  return {
    key: hex(message.key),
    value: hex(message.value),
    headers,
    timestamp: Number(message.timestamp),
    topic,
    partition,
    offset: Number(message.offset)
  }
}

async function readStdin () {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  return Buffer.concat(chunks).toString('utf8')
}

// Every script ends by itself: past KOP_JS_DEADLINE_MS (default 45 s) it says so and exits 3.
function deadline (what) {
  const ms = Number(process.env.KOP_JS_DEADLINE_MS || 45000)
  const timer = setTimeout(() => {
    process.stderr.write(`${what}: deadline of ${ms} ms passed\n`)
    process.exit(3)
  }, ms)
  timer.unref()
}

function fail (error) {
  process.stderr.write(`FAILED: ${error && error.name}: ${error && error.message}\n${error && error.stack}\n`)
  process.exit(1)
}

module.exports = { kafka, toMessage, fromMessage, readStdin, deadline, fail, hex, unhex }
