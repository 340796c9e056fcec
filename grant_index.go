package larksecrets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

// The grant indexes are derived data kept in storage beside the grants, so that neither the sweep
// nor a revocation event needs to read every grant, and nothing about them is kept in memory per
// grant. Each is written under the grant's lock, in the grant's own write (grantTx.put), in an
// order that never hides a grant: a new entry before the grant, an old one deleted after it. A
// crash between the steps leaves an extra entry, which whoever finds it checks against the grant
// and drops. A missing entry (a failed index write) is made good by the walk (sweep_walk.go).
//
//	due/<minute>/<app_id>/<slot>      the sweep looks at the grant from that minute (sweepAt)
//	who/<app_id>/<user hash>/<slot>   the grants of one Lark user, by open_id and by union_id
//	counts/<app_id>                   how many of the app's grants are at each level
const (
	dueIndexPrefix    = "due/"
	whoIndexPrefix    = "who/"
	levelCountsPrefix = "counts/"
)

// indexEntryValue is what an index entry holds: its key says everything.
var indexEntryValue = []byte("1")

// dueBucketOf is the due index's bucket of a time: its Unix minute.
func dueBucketOf(t time.Time) int64 { return t.Unix() / 60 }

// dueBucketKey is the storage prefix of one minute of the due index. Zero-padded, so buckets sort
// by time.
func dueBucketKey(bucket int64) string { return fmt.Sprintf("%s%010d/", dueIndexPrefix, bucket) }

func dueKey(at time.Time, id grantID) string {
	return dueBucketKey(dueBucketOf(at)) + id.App + "/" + id.Slot
}

// parseDueKey reads a key under due/ (without the prefix): its bucket and grant.
func parseDueKey(key string) (int64, grantID, bool) {
	bucket, rest, ok := strings.Cut(key, "/")
	if !ok {
		return 0, grantID{}, false
	}
	b, err := strconv.ParseInt(bucket, 10, 64)
	if err != nil {
		return 0, grantID{}, false
	}
	id, ok := parseGrantID(rest)
	return b, id, ok
}

// whoHash names a Lark user id inside one app's part of the who index. Storage keys are not
// encrypted by Vault's barrier, so user ids do not appear in them.
func whoHash(appID, userID string) string {
	sum := sha256.Sum256([]byte(appID + "\x00" + userID))
	return hex.EncodeToString(sum[:12])
}

func whoPrefix(appID, userID string) string {
	return whoIndexPrefix + appID + "/" + whoHash(appID, userID) + "/"
}

// whoKeys are the who-index entries of a grant with these user ids.
func whoKeys(id grantID, openID, unionID string) []string {
	var out []string
	for _, u := range []string{openID, unionID} {
		if u != "" {
			out = append(out, whoPrefix(id.App, u)+id.Slot)
		}
	}
	return out
}

// indexed is what the indexes hold for one grant: what storage's copy of the grant says they hold.
type indexed struct {
	due             time.Time // zero: no due entry
	level           string    // "" : not counted
	openID, unionID string
}

func indexedOf(g *grantEntry) indexed {
	if g == nil {
		return indexed{}
	}
	return indexed{due: g.DueAt, level: g.Level, openID: g.OpenID, unionID: g.UnionID}
}

// levelCounts owns counts/<app_id>: the number of each app's grants at each level, as last written.
// It changes only when a grant's recorded level changes (a new grant, a level reached, a grant
// removed), and the walk recounts each app once per cycle, so a count a crash left wrong is right
// again within a cycle. Memory holds one small map per app, never anything per grant.
type levelCounts struct {
	logger func() hclog.Logger

	mu     sync.Mutex
	loaded bool
	byApp  map[string]map[string]int
	// dirty: apps whose counts storage refused; stored again at the next change or sweep.
	dirty map[string]bool
	// writing: an app's counts are being stored by one caller of move, outside the lock; again: a
	// change came meanwhile, which that caller stores next (one write at a time per app, always of
	// the newest counts, and concurrent grant writes never wait for each other's count writes).
	writing, again map[string]bool

	// The walk's recount of one app (sweep_walk.go): grants up to cursor are counted in recount,
	// and a change to one of them moves recount too, so the recount is exact when the walk ends.
	recountApp    string
	recountCursor string
	recount       map[string]int
}

func newLevelCounts(logger func() hclog.Logger) *levelCounts {
	return &levelCounts{logger: logger, byApp: map[string]map[string]int{}, dirty: map[string]bool{},
		writing: map[string]bool{}, again: map[string]bool{}}
}

// load reads every app's counts once (after a start, or when another node changed them).
func (c *levelCounts) load(ctx context.Context, s logical.Storage) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loadLocked(ctx, s)
}

func (c *levelCounts) loadLocked(ctx context.Context, s logical.Storage) error {
	if c.loaded {
		return nil
	}
	// Memory that storage never took would be lost by reloading: store it first.
	for app := range c.dirty {
		c.storeLocked(ctx, s, app)
		if c.dirty[app] {
			return fmt.Errorf("level counts of %s not stored", app)
		}
	}
	apps, err := s.List(ctx, levelCountsPrefix)
	if err != nil {
		return err
	}
	byApp := map[string]map[string]int{}
	for _, app := range apps {
		raw, err := s.Get(ctx, levelCountsPrefix+app)
		if err != nil {
			return err
		}
		if raw == nil {
			continue
		}
		m := map[string]int{}
		if err := raw.DecodeJSON(&m); err != nil {
			return fmt.Errorf("decoding level counts of %s: %w", app, err)
		}
		byApp[app] = m
	}
	c.byApp, c.loaded = byApp, true
	return nil
}

// invalidate forgets the counts after another node wrote them.
func (c *levelCounts) invalidate() {
	c.mu.Lock()
	c.loaded = false
	c.mu.Unlock()
}

// move records that grant id went from level from to level to ("": no grant), and stores the
// app's counts: itself, or, when another caller is storing them right now, through that caller,
// which stores them again when it is done. A failure is logged and retried at the next sweep; a
// crash before the write lands is corrected by the walk's recount.
func (c *levelCounts) move(ctx context.Context, s logical.Storage, id grantID, from, to string) {
	if from == to {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.recount != nil && c.recountApp == id.App && id.Slot <= c.recountCursor {
		bump(c.recount, from, -1)
		bump(c.recount, to, 1)
	}
	if err := c.loadLocked(ctx, s); err != nil {
		c.logger().Warn("level counts not updated; the sweep's walk recounts them", "grant", id.String(), "error", err)
		return
	}
	m := c.byApp[id.App]
	if m == nil {
		m = map[string]int{}
		c.byApp[id.App] = m
	}
	bump(m, from, -1)
	bump(m, to, 1)
	if c.writing[id.App] {
		c.again[id.App] = true
		return
	}
	c.writing[id.App] = true
	defer delete(c.writing, id.App)
	for {
		c.again[id.App] = false
		counts := make(map[string]int, len(c.byApp[id.App]))
		for l, n := range c.byApp[id.App] {
			counts[l] = n
		}
		c.mu.Unlock()
		err := writeCounts(ctx, s, id.App, counts)
		c.mu.Lock()
		c.noteStored(id.App, err)
		if !c.again[id.App] {
			return
		}
	}
}

func writeCounts(ctx context.Context, s logical.Storage, appID string, counts map[string]int) error {
	ctx, cancel := detachedStore(ctx)
	defer cancel()
	if len(counts) == 0 {
		return s.Delete(ctx, levelCountsPrefix+appID)
	}
	e, err := logical.StorageEntryJSON(levelCountsPrefix+appID, counts)
	if err != nil {
		return err
	}
	return s.Put(ctx, e)
}

func (c *levelCounts) noteStored(appID string, err error) {
	if err != nil {
		c.dirty[appID] = true
		c.logger().Warn("level counts not stored; the next sweep stores them again", "app_id", appID, "error", err)
		return
	}
	delete(c.dirty, appID)
}

func bump(m map[string]int, level string, by int) {
	if level == "" {
		return
	}
	m[level] += by
	if m[level] <= 0 {
		delete(m, level)
	}
}

// storeLocked stores an app's counts under the lock (the rarer paths: flush, recount, a dropped
// app); when a caller of move is storing them right now, that caller stores them again instead.
func (c *levelCounts) storeLocked(ctx context.Context, s logical.Storage, appID string) {
	if c.writing[appID] {
		c.again[appID] = true
		return
	}
	if len(c.byApp[appID]) == 0 {
		delete(c.byApp, appID)
	}
	c.noteStored(appID, writeCounts(ctx, s, appID, c.byApp[appID]))
}

// flush stores again the counts storage refused.
func (c *levelCounts) flush(ctx context.Context, s logical.Storage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for app := range c.dirty {
		c.storeLocked(ctx, s, app)
	}
}

// startRecount begins the walk's recount of an app, from its first grant.
func (c *levelCounts) startRecount(appID string) {
	c.mu.Lock()
	c.recountApp, c.recountCursor, c.recount = appID, "", map[string]int{}
	c.mu.Unlock()
}

// recounted adds the walk's grant (held under its lock) to the recount and moves the cursor past
// it; false when no recount of its app runs in this process (the walk resumed after a start).
func (c *levelCounts) recounted(id grantID, level string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.recount == nil || c.recountApp != id.App {
		return
	}
	bump(c.recount, level, 1)
	c.recountCursor = id.Slot
}

// finishRecount replaces the app's counts with the recount, when one ran over all of its grants in
// this process. It reports whether the counts changed.
func (c *levelCounts) finishRecount(ctx context.Context, s logical.Storage, appID string) (changed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.recount == nil || c.recountApp != appID {
		return false
	}
	recount := c.recount
	c.recount, c.recountApp, c.recountCursor = nil, "", ""
	if err := c.loadLocked(ctx, s); err != nil {
		c.logger().Warn("level counts not recounted", "app_id", appID, "error", err)
		return false
	}
	if sameCounts(c.byApp[appID], recount) {
		if c.dirty[appID] {
			c.storeLocked(ctx, s, appID)
		}
		return false
	}
	c.logger().Info("the walk recounted an app's grants by level", "app_id", appID, "was", fmt.Sprint(c.byApp[appID]), "now", fmt.Sprint(recount))
	c.byApp[appID] = recount
	c.storeLocked(ctx, s, appID)
	return true
}

// dropRecount abandons a recount (the app went away, or the walk started over).
func (c *levelCounts) dropRecount() {
	c.mu.Lock()
	c.recount, c.recountApp, c.recountCursor = nil, "", ""
	c.mu.Unlock()
}

func sameCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// all is every app's counts (a copy), for the status path.
func (c *levelCounts) all() map[string]map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]map[string]int, len(c.byApp))
	for app, m := range c.byApp {
		cp := make(map[string]int, len(m))
		for l, n := range m {
			cp[l] = n
		}
		out[app] = cp
	}
	return out
}

// total is the mount's grants by level, for the metrics gauge.
func (c *levelCounts) total() map[string]int {
	out := map[string]int{}
	for _, m := range c.all() {
		for l, n := range m {
			out[l] += n
		}
	}
	return out
}

// dropOthers deletes the counts of apps that are no longer configured (the walk's end).
func (c *levelCounts) dropOthers(ctx context.Context, s logical.Storage, apps []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for app := range c.byApp {
		if !slices.Contains(apps, app) {
			c.byApp[app] = nil
			c.storeLocked(ctx, s, app)
		}
	}
}
