package main

import "time"

// parentPollInterval is how often the plugin checks that the Vault process that started it is still
// there: often enough that an orphan is gone within a second or so, rarely enough to cost nothing
// (one getppid system call).
const parentPollInterval = 500 * time.Millisecond

// waitForParentChange blocks until getppid reports a parent other than started (the parent the
// process had when it began) and returns it; it returns changed=false once stop is closed.
//
// Vault runs each plugin as its own child and stops it on unmount, reload or shutdown. A Vault that
// is killed (SIGKILL, OOM killer) cannot: the kernel hands its children to init or to the nearest
// subreaper, and the plugin would live on with app secrets and user tokens in memory and nobody
// left to serve. A different parent pid is the one sign of that which needs no cooperation from
// the dead parent. (A Vault running as pid 1 of a container never changes, and when it dies the
// container ends with it.)
func waitForParentChange(started int, getppid func() int, interval time.Duration, stop <-chan struct{}) (now int, changed bool) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		if now := getppid(); now != started {
			return now, true
		}
		select {
		case <-stop:
			return 0, false
		case <-ticker.C:
		}
	}
}
