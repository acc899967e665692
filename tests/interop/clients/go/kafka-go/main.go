// segmentio kafka-go (github.com/segmentio/kafka-go 0.2.1, Debian golang-github-segmentio-kafka-go-dev)
// against kop-fast.
//
// Records travel as the JSON lines of tests/interop/clients/canonical.py:
// {"key": hex|null, "value": hex|null, "headers": [[name, hex|null], ...], "timestamp": ms}.
// kafka-go 0.2.1 has no record headers (its Message has Key, Value and Time only, written as
// magic 1 messages): headers in the input are dropped and none are printed.
//
//	main produce -bootstrap H:P -topic T [-max-attempts N]  < records.jsonl
//	    a default kafka.Writer (it picks the partition; the tests use one-partition topics);
//	    prints {"written": n} (0.2.1 does not report offsets)
//	main consume-group -bootstrap H:P -topic T -group G -count N
//	    a default kafka.Reader in group G: FetchMessage N records, CommitMessages them;
//	    prints each record as a JSON line with its "offset"
//	main commit -bootstrap H:P -topic T -group G -offset N
//	    joins group G and commits offset N for partition 0 without reading
//	    (CommitMessages of a message at N-1: kafka-go commits the offset after it)
//
// Errors go to stderr as "error: ..." with exit status 1; the Reader's own error log is
// printed on stderr too, and with -fail-fast (consume-group) its first error ends the run.
// The whole run is bounded by GO_CLIENT_TIMEOUT_S (default 60 s; exit status 2).
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
	"time"

	kafka "github.com/segmentio/kafka-go"
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

// errorLog prints the Reader's error log on stderr; with failFast the first line that is an
// error ends the run (0.2.1 also logs "Syncing N assignments ..." there).
type errorLog struct{ failFast bool }

func (e errorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	fmt.Fprintf(os.Stderr, "reader log: %s\n", msg)
	if e.failFast && strings.Contains(strings.ToLower(msg), "error") {
		fail("reader: %s", msg)
	}
	return len(p), nil
}

func produce(args []string) {
	fs := flag.NewFlagSet("produce", flag.ExitOnError)
	bootstrap := fs.String("bootstrap", "", "host:port")
	topic := fs.String("topic", "", "topic")
	attempts := fs.Int("max-attempts", 0, "WriterConfig.MaxAttempts (0: kafka-go's default, 10)")
	fs.Parse(args)

	w := kafka.NewWriter(kafka.WriterConfig{Brokers: []string{*bootstrap}, Topic: *topic, MaxAttempts: *attempts})
	var msgs []kafka.Message
	for _, r := range readRecords() {
		msgs = append(msgs, kafka.Message{Key: unhex(r.Key), Value: unhex(r.Value),
			Time: time.Unix(0, r.Timestamp*int64(time.Millisecond))})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		fail("write: %v", err)
	}
	if err := w.Close(); err != nil {
		fail("close: %v", err)
	}
	emit(map[string]int{"written": len(msgs)})
}

func reader(bootstrap, topic, group string, failFast bool) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{Brokers: []string{bootstrap}, Topic: topic, GroupID: group,
		ErrorLogger: log.New(errorLog{failFast}, "", 0)})
}

func consumeGroup(args []string) {
	fs := flag.NewFlagSet("consume-group", flag.ExitOnError)
	bootstrap := fs.String("bootstrap", "", "host:port")
	topic := fs.String("topic", "", "topic")
	group := fs.String("group", "", "group id")
	count := fs.Int("count", 0, "records to read")
	failFast := fs.Bool("fail-fast", false, "the Reader's first error ends the run")
	fs.Parse(args)

	r := reader(*bootstrap, *topic, *group, *failFast)
	ctx := context.Background()
	var got []kafka.Message
	for len(got) < *count {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			fail("fetch: %v", err)
		}
		got = append(got, m)
	}
	if err := r.CommitMessages(ctx, got...); err != nil {
		fail("commit: %v", err)
	}
	if err := r.Close(); err != nil {
		fail("close: %v", err)
	}
	for _, m := range got {
		offset := m.Offset
		emit(record{Key: tohex(m.Key), Value: tohex(m.Value), Headers: [][2]*string{},
			Timestamp: m.Time.UnixNano() / int64(time.Millisecond), Offset: &offset})
	}
}

func commit(args []string) {
	fs := flag.NewFlagSet("commit", flag.ExitOnError)
	bootstrap := fs.String("bootstrap", "", "host:port")
	topic := fs.String("topic", "", "topic")
	group := fs.String("group", "", "group id")
	offset := fs.Int64("offset", 0, "the offset to commit (the next one to read)")
	fs.Parse(args)

	r := reader(*bootstrap, *topic, *group, false)
	err := r.CommitMessages(context.Background(), kafka.Message{Topic: *topic, Partition: 0, Offset: *offset - 1})
	if err != nil {
		fail("commit: %v", err)
	}
	if err := r.Close(); err != nil {
		fail("close: %v", err)
	}
	emit(map[string]int64{"committed": *offset})
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: %s produce|consume-group|commit [flags]", os.Args[0])
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
	case "commit":
		commit(os.Args[2:])
	default:
		fail("unknown subcommand %q", os.Args[1])
	}
}
