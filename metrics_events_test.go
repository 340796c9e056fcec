package larksecrets

import dto "github.com/prometheus/client_model/go"

// get reads one event counter, for tests.
func (c eventCounts) get(eventType, result string) uint64 {
	var m dto.Metric
	if err := c.vec.WithLabelValues(eventType, result).Write(&m); err != nil {
		return 0
	}
	return uint64(m.GetCounter().GetValue())
}
