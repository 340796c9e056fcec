package larksecrets

import (
	"fmt"
	"io"
	"sort"
	"sync"
)

// eventCounts counts the events Lark posted to events/<app_id>, by type and result. It lives apart
// from the rest of the metrics so that it can move as a whole; both labels come from short fixed
// lists (eventTypeLabel, the event* results and larkevent's reasons), never from a request.
type eventCounts struct {
	mu     sync.Mutex
	counts map[[2]string]uint64
}

func (c *eventCounts) add(eventType, result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[[2]string]uint64{}
	}
	c.counts[[2]string{eventType, result}]++
}

func (c *eventCounts) get(eventType, result string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[[2]string{eventType, result}]
}

// write renders lark_events_total in the Prometheus text format.
func (c *eventCounts) write(w io.Writer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = fmt.Fprintf(w, "# HELP lark_events_total Events received from Lark by type and result.\n# TYPE lark_events_total counter\n")
	keys := make([][2]string, 0, len(c.counts))
	for k := range c.counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+"\x00"+keys[i][1] < keys[j][0]+"\x00"+keys[j][1] })
	for _, k := range keys {
		_, _ = fmt.Fprintf(w, "lark_events_total{type=%q,result=%q} %d\n", k[0], k[1], c.counts[k])
	}
}

// event counts one event.
func (m *metrics) event(eventType, result string) { m.events.add(eventType, result) }
