package larksecrets

import "github.com/prometheus/client_golang/prometheus"

// eventCounts counts the events Lark posted to events/<app_id>, by type and result. Both labels come
// from short fixed lists (eventTypeLabel, the event* results and larkevent's reasons), never from a
// request.
type eventCounts struct{ vec *prometheus.CounterVec }

func newEventCounts() eventCounts {
	return eventCounts{vec: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lark_events_total",
		Help: "Events received from Lark by type and result. Counters restart with the plugin process.",
	}, []string{"type", "result"})}
}

func (c eventCounts) add(eventType, result string) { c.vec.WithLabelValues(eventType, result).Inc() }

// event counts one event.
func (m *metrics) event(eventType, result string) { m.events.add(eventType, result) }
