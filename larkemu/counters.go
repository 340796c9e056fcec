package larkemu

func (s *Server) count(endpoint string) {
	s.mu.Lock()
	s.counters[endpoint]++
	s.mu.Unlock()
}

// Calls reports how many requests reached endpoint since the last Reset, including those answered
// by an injected failure.
func (s *Server) Calls(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counters[endpoint]
}

// Counters returns every counter, zeros included, so callers can compare whole maps.
func (s *Server) Counters() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(counterNames))
	for _, name := range counterNames {
		out[name] = s.counters[name]
	}
	return out
}
