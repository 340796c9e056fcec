package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// loadResult is one burst of reads of one path.
type loadResult struct {
	Requests   int
	Errors     int
	FirstError string
	Elapsed    time.Duration
	Latencies  []time.Duration
}

// runLoad sends GETs of path from conc connections in a closed loop (each sends its next request
// when the previous answer is in) until dur has passed, or until count requests were sent when
// count > 0, or ctx ends. Bodies are read and dropped; any status but 200 is an error.
func runLoad(ctx context.Context, c *vaultClient, path string, conc int, dur time.Duration, count int) loadResult {
	url := c.addr + "/v1/" + path
	var (
		sent  atomic.Int64
		mu    sync.Mutex
		total loadResult
		wg    sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(dur)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			errs, firstErr := 0, ""
			for ctx.Err() == nil {
				if count > 0 {
					if sent.Add(1) > int64(count) {
						break
					}
				} else if !time.Now().Before(deadline) {
					break
				}
				t0 := time.Now()
				err := getDiscard(ctx, c, url)
				if err != nil && ctx.Err() != nil {
					break // stopped, not failed
				}
				lat = append(lat, time.Since(t0))
				if err != nil {
					errs++
					if firstErr == "" {
						firstErr = err.Error()
					}
				}
			}
			mu.Lock()
			total.Requests += len(lat)
			total.Errors += errs
			if total.FirstError == "" {
				total.FirstError = firstErr
			}
			total.Latencies = append(total.Latencies, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	total.Elapsed = time.Since(start)
	return total
}

func getDiscard(ctx context.Context, c *vaultClient, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Vault-Token", c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	_, copyErr := io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return copyErr
}

// percentile is the nearest-rank percentile (0 < p <= 100) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// tally sums the rounds of one target.
type tally struct {
	requests  int
	elapsed   time.Duration
	roundRPS  []float64
	latencies []time.Duration
	// CPU of Vault and of the plugin process that served the reads, over the rounds.
	vaultCPU, pluginCPU time.Duration
}

// cpuPerRead is the CPU Vault and the plugin spent per read, in microseconds.
func (t *tally) cpuPerRead() (vault, plugin float64) {
	if t.requests == 0 {
		return 0, 0
	}
	return float64(t.vaultCPU.Microseconds()) / float64(t.requests), float64(t.pluginCPU.Microseconds()) / float64(t.requests)
}

func (t *tally) add(r loadResult) {
	t.requests += r.Requests
	t.elapsed += r.Elapsed
	t.roundRPS = append(t.roundRPS, float64(r.Requests)/r.Elapsed.Seconds())
	t.latencies = append(t.latencies, r.Latencies...)
}

// summary turns the rounds into req/s over the whole measured time and latency percentiles over
// every request.
func (t *tally) summary() (rps float64, p50, p99 time.Duration) {
	if t.elapsed <= 0 {
		return 0, 0, 0
	}
	lat := slices.Clone(t.latencies)
	slices.Sort(lat)
	return float64(t.requests) / t.elapsed.Seconds(), percentile(lat, 50), percentile(lat, 99)
}
