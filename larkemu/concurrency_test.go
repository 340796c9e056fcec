package larkemu

import (
	"net/http"
	"sync"
	"testing"
)

func TestConcurrentTokenRequests(t *testing.T) {
	// Start cold: the parallel callers race to mint, and exactly one token may come out of it.
	s, ts, _ := newFakeEmu(t, Options{})
	inject(t, s, Failure{Endpoint: EndpointAppAccessToken, Mode: Fail5xx, Count: 10})

	const workers, perWorker = 16, 25
	var (
		mu       sync.Mutex
		tokens   = map[string]int{}
		status   = map[int]int{}
		wg       sync.WaitGroup
		tr       = &http.Transport{MaxIdleConnsPerHost: workers}
		client   = &http.Client{Transport: tr}
		paths    = []string{PathAppAccessToken, PathTenantAccessToken}
		errOnce  sync.Once
		firstErr error
	)
	defer tr.CloseIdleConnections()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				resp, body, err := tryPost(client, ts.URL+paths[(w+i)%2])
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				mu.Lock()
				status[resp.StatusCode]++
				if resp.StatusCode == 200 {
					var lt legacyToken
					if err := jsonUnmarshal(body, &lt); err == nil {
						tokens[lt.TenantAccessToken]++
					}
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	total := workers * perWorker
	expectEqual(t, "503s", status[503], 10)
	expectEqual(t, "200s", status[200], total-10)
	expectEqual(t, "distinct tokens", len(tokens), 1)
	expectEqual(t, "app calls", s.Calls(EndpointAppAccessToken), total/2)
	expectEqual(t, "tenant calls", s.Calls(EndpointTenantAccessToken), total/2)
}
