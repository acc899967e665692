'use strict'
// node admin.js BOOTSTRAP STEPS_JSON, e.g. '[["create", "t", 3], ["metadata", "t"], ["delete", "t"]]'
// Steps (the `steps` table below): create TOPIC PARTITIONS, list, metadata TOPIC, partitions TOPIC COUNT,
// delete TOPIC, topic-offsets TOPIC, offsets-by-time TOPIC MS, group-offsets GROUP TOPIC, cluster,
// describe-config TOPIC NAME, alter-config TOPIC NAME VALUE, groups, describe-group GROUP.
// Runs the steps in order on one KafkaJS admin client (default configuration) and prints one JSON
// line per step: {"step": name, "result": ...} or {"step": name, "error": {name, type, message}}.
// A step that fails does not stop the ones after it.
const { ConfigResourceTypes } = require('kafkajs')
const { kafka, deadline, fail } = require('./lib')

const steps = {
  create: (admin, topic, numPartitions) => admin.createTopics({ topics: [{ topic, numPartitions }] }),
  list: admin => admin.listTopics(),
  metadata: (admin, topic) => admin.fetchTopicMetadata({ topics: [topic] }),
  partitions: (admin, topic, count) => admin.createPartitions({ topicPartitions: [{ topic, count }] }).then(() => true),
  delete: (admin, topic) => admin.deleteTopics({ topics: [topic] }).then(() => true),
  'topic-offsets': (admin, topic) => admin.fetchTopicOffsets(topic),
  'offsets-by-time': (admin, topic, timestamp) => admin.fetchTopicOffsetsByTimestamp(topic, timestamp),
  'group-offsets': (admin, groupId, topic) => admin.fetchOffsets({ groupId, topics: [topic] }),
  cluster: admin => admin.describeCluster(),
  'describe-config': (admin, topic, name) => admin.describeConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: [name] }], includeSynonyms: false }),
  'alter-config': (admin, topic, name, value) => admin.alterConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name, value }] }] }),
  groups: admin => admin.listGroups(),
  'describe-group': (admin, groupId) => admin.describeGroups([groupId])
}

async function main () {
  const [bootstrap, plan] = process.argv.slice(2)
  deadline('admin')
  const admin = kafka(bootstrap).admin()
  await admin.connect()
  try {
    for (const [name, ...args] of JSON.parse(plan)) {
      try {
        const result = await steps[name](admin, ...args)
        process.stdout.write(JSON.stringify({ step: name, result }) + '\n')
      } catch (e) {
        process.stdout.write(JSON.stringify({ step: name, error: { name: e.name, type: e.type, message: e.message } }) + '\n')
      }
    }
  } finally {
    await admin.disconnect()
  }
}

main().catch(fail)
