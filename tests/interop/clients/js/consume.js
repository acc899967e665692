'use strict'
// node consume.js BOOTSTRAP TOPIC GROUP N
// Joins GROUP with KafkaJS's default consumer settings (subscribed fromBeginning, since the group has
// no committed offset yet), reads N records, commits the position after each partition's last one
// read, and leaves. Each record is printed as it is read, as a canonical JSON line (plus topic,
// partition, offset), so a run that ends at its deadline still shows what it got.
const { kafka, fromMessage, deadline, fail } = require('./lib')

async function main () {
  const [bootstrap, topic, groupId, countArg] = process.argv.slice(2)
  const count = Number(countArg)
  deadline('consume')
  const consumer = kafka(bootstrap).consumer({ groupId })
  const got = []
  const next = {} // partition -> the offset after the last record read
  let done
  const finished = new Promise(resolve => { done = resolve })
  await consumer.connect()
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await consumer.run({
      eachMessage: async ({ partition, message, pause }) => {
        // The tests ask for every record there is, so nothing comes after the Nth; were something
        // handed over anyway, it would not be printed nor in the explicit commit below (though
        // KafkaJS's default auto-commit would count it as read).
        if (got.length >= count) { pause(); return }
        const record = fromMessage(topic, partition, message)
        got.push(record)
        process.stdout.write(JSON.stringify(record) + '\n')
        next[partition] = Number(message.offset) + 1
        if (got.length >= count) {
          consumer.pause([{ topic }]) // every partition: no more fetching
          done()
        }
      }
    })
    await finished
    await consumer.commitOffsets(Object.entries(next).map(([partition, offset]) =>
      ({ topic, partition: Number(partition), offset: String(offset) })))
  } finally {
    await consumer.disconnect()
  }
}

main().catch(fail)
