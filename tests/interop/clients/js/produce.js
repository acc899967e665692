'use strict'
// node produce.js BOOTSTRAP TOPIC [PRODUCER_CONFIG_JSON] < canonical JSON lines
// Sends every record in one producer.send() (so one batch per partition) with KafkaJS's default
// producer, or the producer PRODUCER_CONFIG_JSON describes (e.g. {"idempotent": true}; its key
// "kafka", if any, holds options for the client itself, and "compression" (e.g. "GZIP") is the send's
// codec, one of KafkaJS's CompressionTypes); with a transactionalId the send runs inside
// producer.transaction() and is committed. A line's optional "partition" picks the record's partition
// (else KafkaJS's default partitioner does). Prints one JSON line per partition the send reached:
// KafkaJS's RecordMetadata.
const { CompressionTypes } = require('kafkajs')
const { kafka, toMessage, readStdin, deadline, fail } = require('./lib')

async function main () {
  const [bootstrap, topic, configJson] = process.argv.slice(2)
  deadline('produce')
  const { kafka: clientOptions, compression, ...config } = configJson ? JSON.parse(configJson) : {}
  const messages = (await readStdin()).split('\n').filter(l => l.trim()).map(l => toMessage(JSON.parse(l)))
  const producer = kafka(bootstrap, clientOptions).producer(config)
  await producer.connect()
  try {
    let metadata
    if (config.transactionalId) {
      const transaction = await producer.transaction()
      metadata = await transaction.send({ topic, messages, compression: CompressionTypes[compression] })
      await transaction.commit()
    } else {
      metadata = await producer.send({ topic, messages, compression: CompressionTypes[compression] })
    }
    for (const m of metadata) process.stdout.write(JSON.stringify(m) + '\n')
  } finally {
    await producer.disconnect()
  }
}

main().catch(fail)
