package larksecrets

import (
	"context"
	"time"
)

// storeTimeout bounds storing the outcome of a call Lark has answered. It is detached from the
// request: a client that gives up, a Vault request timeout or the end of a sweep's budget must not
// stop Vault from keeping a single-use refresh token that Lark has already replaced.
const storeTimeout = 30 * time.Second

// detachedStore is the context for such a write: ctx's values without its cancellation, bounded by
// storeTimeout.
func detachedStore(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
}
