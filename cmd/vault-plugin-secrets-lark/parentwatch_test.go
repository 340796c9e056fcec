package main

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitForParentChange(t *testing.T) {
	tests := []struct {
		name    string
		started int
		parents []int // what getppid answers, call after call; the last one repeats
		want    int
		calls   int // getppid calls up to and including the one that saw the change
	}{
		{name: "Vault killed: re-parented to init", started: 4242, parents: []int{4242, 4242, 4242, 1}, want: 1, calls: 4},
		{name: "Vault killed: re-parented to a subreaper", started: 4242, parents: []int{4242, 977}, want: 977, calls: 2},
		{name: "gone before the first check", started: 4242, parents: []int{1}, want: 1, calls: 1},
		// Vault as pid 1 of a container: a parent of 1 from the start is no sign of anything; only a
		// change is (0 is what getppid says of a parent outside the process's pid namespace).
		{name: "started under pid 1", started: 1, parents: []int{1, 1, 1, 0}, want: 0, calls: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			getppid := func() int {
				n := int(calls.Add(1))
				if n > len(tt.parents) {
					n = len(tt.parents)
				}
				return tt.parents[n-1]
			}
			now, changed := waitForParentChange(tt.started, getppid, time.Millisecond, nil)
			if !changed || now != tt.want {
				t.Fatalf("waitForParentChange = %d, %v; want %d, true", now, changed, tt.want)
			}
			if got := int(calls.Load()); got != tt.calls {
				t.Fatalf("getppid was called %d times, want %d (it must stop at the first change)", got, tt.calls)
			}
		})
	}
}

// A parent that stays is never taken for a dead one, however long the plugin runs.
func TestWaitForParentChangeKeepsWaitingWhileVaultLives(t *testing.T) {
	var calls atomic.Int32
	getppid := func() int { calls.Add(1); return 4242 }
	stop := make(chan struct{})
	type result struct {
		now     int
		changed bool
	}
	done := make(chan result, 1)
	go func() {
		now, changed := waitForParentChange(4242, getppid, time.Millisecond, stop)
		done <- result{now, changed}
	}()
	for calls.Load() < 50 {
		select {
		case r := <-done:
			t.Fatalf("returned %+v while the parent was still there", r)
		case <-time.After(time.Millisecond):
		}
	}
	close(stop)
	select {
	case r := <-done:
		if r.changed {
			t.Fatalf("returned %+v after stop, want changed=false", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not return after stop")
	}
}
