// confluent-kafka-go (github.com/confluentinc/confluent-kafka-go/kafka 0.11.6, Debian
// golang-github-confluentinc-confluent-kafka-go-dev; cgo over the system librdkafka) against kop-fast.
//
// Records travel as the JSON lines of tests/interop/clients/canonical.py:
// {"key": hex|null, "value": hex|null, "headers": [[name, hex|null], ...], "timestamp": ms}.
//
//	main produce -bootstrap H:P -topic T [-partition 0] [-set key=value ...]  < records.jsonl
//	    prints {"offset": n} per delivered record, in input order
//	main consume-group -bootstrap H:P -topic T -group G -count N [-set key=value ...]
//	    subscribes in group G, reads N records, commits them (Consumer.Commit) and closes;
//	    prints each record as a JSON line with its "offset"
//
// Everything not named here is librdkafka's default configuration; -set adds a property.
// Errors go to stderr as "error: ..." with exit status 1; the whole run is bounded by
// GO_CLIENT_TIMEOUT_S (default 60 s; exit status 2).
package main

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/kafka"
)

type record struct {
	Key       *string      `json:"key"`
	Value     *string      `json:"value"`
	Headers   [][2]*string `json:"headers"`
	Timestamp int64        `json:"timestamp"`
	Offset    *int64       `json:"offset,omitempty"`
}

type settings []string

func (s *settings) String() string     { return strings.Join(*s, ",") }
func (s *settings) Set(v string) error { *s = append(*s, v); return nil }

func unhex(s *string) []byte {
	if s == nil {
		return nil
	}
	b, err := hex.DecodeString(*s)
	if err != nil {
		fail("bad hex %q: %v", *s, err)
	}
	return b
}

func tohex(b []byte) *string {
	if b == nil {
		return nil
	}
	s := hex.EncodeToString(b)
	return &s
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "error: "+format+"\n", args...)
	os.Exit(1)
}

func emit(v interface{}) {
	out, err := json.Marshal(v)
	if err != nil {
		fail("json: %v", err)
	}
	fmt.Println(string(out))
}

func readRecords() []record {
	data, err := ioutil.ReadAll(os.Stdin)
	if err != nil {
		fail("stdin: %v", err)
	}
	var out []record
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			fail("json line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

func configMap(bootstrap string, extra settings) *kafka.ConfigMap {
	conf := &kafka.ConfigMap{"bootstrap.servers": bootstrap}
	for _, kv := range extra {
		if err := conf.Set(kv); err != nil {
			fail("-set %s: %v", kv, err)
		}
	}
	return conf
}

func produce(args []string) {
	fs := flag.NewFlagSet("produce", flag.ExitOnError)
	bootstrap := fs.String("bootstrap", "", "host:port")
	topic := fs.String("topic", "", "topic")
	partition := fs.Int("partition", 0, "partition")
	var extra settings
	fs.Var(&extra, "set", "key=value (repeatable)")
	fs.Parse(args)

	p, err := kafka.NewProducer(configMap(*bootstrap, extra))
	if err != nil {
		fail("new producer: %v", err)
	}
	records := readRecords()
	delivered := make(chan kafka.Event, len(records))
	for i, r := range records {
		m := &kafka.Message{
			TopicPartition: kafka.TopicPartition{Topic: topic, Partition: int32(*partition)},
			Key:            unhex(r.Key), Value: unhex(r.Value),
			Timestamp: time.Unix(0, r.Timestamp*int64(time.Millisecond)), Opaque: i}
		for _, h := range r.Headers {
			m.Headers = append(m.Headers, kafka.Header{Key: *h[0], Value: unhex(h[1])})
		}
		if err := p.Produce(m, delivered); err != nil {
			fail("produce #%d: %v", i, err)
		}
	}
	offsets := make([]int64, len(records))
	for range records {
		m, ok := (<-delivered).(*kafka.Message)
		if !ok {
			fail("unexpected delivery event")
		}
		if m.TopicPartition.Error != nil {
			fail("delivery of #%v: %v", m.Opaque, m.TopicPartition.Error)
		}
		offsets[m.Opaque.(int)] = int64(m.TopicPartition.Offset)
	}
	p.Close()
	for _, o := range offsets {
		emit(map[string]int64{"offset": o})
	}
}

func consumeGroup(args []string) {
	fs := flag.NewFlagSet("consume-group", flag.ExitOnError)
	bootstrap := fs.String("bootstrap", "", "host:port")
	topic := fs.String("topic", "", "topic")
	group := fs.String("group", "", "group id")
	count := fs.Int("count", 0, "records to read")
	var extra settings
	fs.Var(&extra, "set", "key=value (repeatable)")
	fs.Parse(args)

	conf := configMap(*bootstrap, extra)
	conf.SetKey("group.id", *group)
	conf.SetKey("auto.offset.reset", "earliest") // the records were written before the group existed
	c, err := kafka.NewConsumer(conf)
	if err != nil {
		fail("new consumer: %v", err)
	}
	if err := c.Subscribe(*topic, nil); err != nil {
		fail("subscribe: %v", err)
	}
	var got []*kafka.Message
	for len(got) < *count {
		m, err := c.ReadMessage(time.Second)
		if err != nil {
			if kerr, ok := err.(kafka.Error); ok && kerr.Code() == kafka.ErrTimedOut {
				continue
			}
			fail("read: %v", err)
		}
		got = append(got, m)
	}
	if _, err := c.Commit(); err != nil {
		fail("commit: %v", err)
	}
	if err := c.Close(); err != nil {
		fail("close: %v", err)
	}
	for _, m := range got {
		offset := int64(m.TopicPartition.Offset)
		r := record{Key: tohex(m.Key), Value: tohex(m.Value), Headers: [][2]*string{},
			Timestamp: m.Timestamp.UnixNano() / int64(time.Millisecond), Offset: &offset}
		for _, h := range m.Headers {
			name := h.Key
			r.Headers = append(r.Headers, [2]*string{&name, tohex(h.Value)})
		}
		emit(r)
	}
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: %s produce|consume-group [flags]", os.Args[0])
	}
	timeout := 60 * time.Second
	if s := os.Getenv("GO_CLIENT_TIMEOUT_S"); s != "" {
		var n int
		fmt.Sscanf(s, "%d", &n)
		timeout = time.Duration(n) * time.Second
	}
	time.AfterFunc(timeout, func() {
		fmt.Fprintf(os.Stderr, "error: timeout after %v\n", timeout)
		os.Exit(2)
	})
	switch os.Args[1] {
	case "produce":
		produce(os.Args[2:])
	case "consume-group":
		consumeGroup(os.Args[2:])
	default:
		fail("unknown subcommand %q", os.Args[1])
	}
}
