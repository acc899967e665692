// Sarama (github.com/Shopify/sarama, Debian golang-github-shopify-sarama-dev) against kop-fast.
//
// Records travel as the JSON lines of tests/interop/clients/canonical.py:
// {"key": hex|null, "value": hex|null, "headers": [[name, hex|null], ...], "timestamp": ms}.
//
//	main produce -bootstrap H:P -topic T [-partition 0] [-version V] [-compression C]  < records.jsonl
//	    prints {"offset": n} per delivered record, in input order
//	main consume -bootstrap H:P -topic T [-partition 0] [-offset 0] -count N [-version V]
//	    a plain Consumer (no group; sarama.NewConsumer, ConsumePartition) reads N records
//	    from the offset on and prints each as a JSON line with its "offset"
//	main consume-group -bootstrap H:P -topic T -group G -count N [-version V]
//	    joins G, reads N records, marks them and leaves (the offsets are committed on the way out);
//	    prints each record as a JSON line with its "offset"; the first error the consumer group
//	    reports (Consumer.Return.Errors) ends the run
//
// Everything not named here is Sarama's default configuration (sarama.NewConfig()); -version
// sets Config.Version (default: Sarama's own default, the oldest it knows, V0_8_2_0).
// A record without a timestamp (magic 0 messages: Sarama's zero time) is printed with
// "timestamp": -1.
// Errors go to stderr as "error: ..." with exit status 1; -timeout bounds the whole run (status 2).
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

type record struct {
	Key       *string      `json:"key"`
	Value     *string      `json:"value"`
	Headers   [][2]*string `json:"headers"`
	Timestamp int64        `json:"timestamp"`
	Offset    *int64       `json:"offset,omitempty"`
}

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

func config(version string) *sarama.Config {
	conf := sarama.NewConfig()
	if version != "" {
		v, err := sarama.ParseKafkaVersion(version)
		if err != nil {
			fail("%v", err)
		}
		conf.Version = v
	}
	return conf
}

func produce(args []string) {
	fs := flag.NewFlagSet("produce", flag.ExitOnError)
	bootstrap := fs.String("bootstrap", "", "host:port")
	topic := fs.String("topic", "", "topic")
	partition := fs.Int("partition", 0, "partition")
	version := fs.String("version", "", "Config.Version (default: Sarama's)")
	compression := fs.String("compression", "", "Producer.Compression: gzip, snappy, lz4, zstd (default: none)")
	idempotent := fs.Bool("idempotent", false, "Producer.Idempotent (with what Sarama requires for it: "+
		"RequiredAcks WaitForAll, Net.MaxOpenRequests 1)")
	fs.Parse(args)

	conf := config(*version)
	if *idempotent {
		conf.Producer.Idempotent = true
		conf.Producer.RequiredAcks = sarama.WaitForAll
		conf.Net.MaxOpenRequests = 1
	}
	codecs := map[string]sarama.CompressionCodec{"": sarama.CompressionNone, "gzip": sarama.CompressionGZIP,
		"snappy": sarama.CompressionSnappy, "lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD}
	codec, known := codecs[*compression]
	if !known {
		fail("unknown compression %q", *compression)
	}
	conf.Producer.Compression = codec
	conf.Producer.Return.Successes = true                   // a SyncProducer requires it
	conf.Producer.Partitioner = sarama.NewManualPartitioner // to write the partition asked for
	producer, err := sarama.NewSyncProducer([]string{*bootstrap}, conf)
	if err != nil {
		fail("new producer: %v", err)
	}
	var msgs []*sarama.ProducerMessage
	for _, r := range readRecords() {
		m := &sarama.ProducerMessage{Topic: *topic, Partition: int32(*partition),
			Timestamp: time.Unix(0, r.Timestamp*int64(time.Millisecond))}
		if k := unhex(r.Key); k != nil {
			m.Key = sarama.ByteEncoder(k)
		}
		if v := unhex(r.Value); v != nil {
			m.Value = sarama.ByteEncoder(v)
		}
		for _, h := range r.Headers {
			m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(*h[0]), Value: unhex(h[1])})
		}
		msgs = append(msgs, m)
	}
	if err := producer.SendMessages(msgs); err != nil {
		if errs, ok := err.(sarama.ProducerErrors); ok && len(errs) > 0 {
			var distinct []string
			seen := map[string]bool{}
			for _, e := range errs {
				if s := e.Err.Error(); !seen[s] {
					seen[s] = true
					distinct = append(distinct, s)
				}
			}
			fail("send: %v; errors: %s", err, strings.Join(distinct, "; "))
		}
		fail("send: %v", err)
	}
	if err := producer.Close(); err != nil {
		fail("close: %v", err)
	}
	for _, m := range msgs {
		emit(map[string]int64{"offset": m.Offset})
	}
}

// output is a consumed record as a JSON line's record.
func output(m *sarama.ConsumerMessage) record {
	offset := m.Offset
	r := record{Key: tohex(m.Key), Value: tohex(m.Value), Headers: [][2]*string{}, Timestamp: -1, Offset: &offset}
	if !m.Timestamp.IsZero() {
		r.Timestamp = m.Timestamp.UnixNano() / int64(time.Millisecond)
	}
	for _, hd := range m.Headers {
		name := string(hd.Key)
		r.Headers = append(r.Headers, [2]*string{&name, tohex(hd.Value)})
	}
	return r
}

func consume(args []string) {
	fs := flag.NewFlagSet("consume", flag.ExitOnError)
	bootstrap := fs.String("bootstrap", "", "host:port")
	topic := fs.String("topic", "", "topic")
	partition := fs.Int("partition", 0, "partition")
	offset := fs.Int64("offset", 0, "the first offset to read")
	count := fs.Int("count", 0, "records to read")
	version := fs.String("version", "", "Config.Version (default: Sarama's)")
	fs.Parse(args)

	consumer, err := sarama.NewConsumer([]string{*bootstrap}, config(*version))
	if err != nil {
		fail("new consumer: %v", err)
	}
	pc, err := consumer.ConsumePartition(*topic, int32(*partition), *offset)
	if err != nil {
		fail("consume partition: %v", err)
	}
	var got []*sarama.ConsumerMessage
	for len(got) < *count {
		select {
		case m := <-pc.Messages():
			got = append(got, m)
		case err := <-pc.Errors():
			fail("consume: %v", err)
		}
	}
	if err := pc.Close(); err != nil {
		fail("close partition consumer: %v", err)
	}
	if err := consumer.Close(); err != nil {
		fail("close: %v", err)
	}
	for _, m := range got {
		emit(output(m))
	}
}

type handler struct {
	count int
	mu    sync.Mutex
	got   []*sarama.ConsumerMessage
	done  chan struct{}
	once  sync.Once
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		h.mu.Lock()
		if len(h.got) < h.count {
			h.got = append(h.got, m)
			sess.MarkMessage(m, "")
		}
		full := len(h.got) >= h.count
		h.mu.Unlock()
		if full {
			h.once.Do(func() { close(h.done) })
		}
	}
	return nil
}

func consumeGroup(args []string) {
	fs := flag.NewFlagSet("consume-group", flag.ExitOnError)
	bootstrap := fs.String("bootstrap", "", "host:port")
	topic := fs.String("topic", "", "topic")
	group := fs.String("group", "", "group id")
	count := fs.Int("count", 0, "records to read")
	version := fs.String("version", "", "Config.Version (default: Sarama's)")
	fs.Parse(args)

	conf := config(*version)
	conf.Consumer.Offsets.Initial = sarama.OffsetOldest // the records were written before the group existed
	conf.Consumer.Return.Errors = true                  // to see them (the first one ends the run)
	cg, err := sarama.NewConsumerGroup([]string{*bootstrap}, *group, conf)
	if err != nil {
		fail("new consumer group: %v", err)
	}
	go func() {
		for err := range cg.Errors() {
			fail("consumer group: %v", err)
		}
	}()
	h := &handler{count: *count, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	consumed := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{*topic}, h); err != nil {
				consumed <- err
				return
			}
		}
		consumed <- nil
	}()
	select {
	case <-h.done:
	case err := <-consumed:
		fail("consume: %v", err)
	}
	cancel() // ends the session: its offset manager commits what was marked
	if err := <-consumed; err != nil {
		fail("consume: %v", err)
	}
	if err := cg.Close(); err != nil {
		fail("close: %v", err)
	}
	for _, m := range h.got {
		emit(output(m))
	}
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: %s produce|consume|consume-group [flags]", os.Args[0])
	}
	sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Lmicroseconds)
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
	case "consume":
		consume(os.Args[2:])
	case "consume-group":
		consumeGroup(os.Args[2:])
	default:
		fail("unknown subcommand %q", os.Args[1])
	}
}
