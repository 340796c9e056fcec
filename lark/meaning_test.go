package lark

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestMeaningOfEveryKind is the one table from kind to the plugin's next move. A new kind must be
// added here, or it silently means "unknown".
func TestMeaningOfEveryKind(t *testing.T) {
	want := map[ErrorKind]Meaning{
		KindAppSecretRejected:  MeaningAppSetup,
		KindAppNotFound:        MeaningAppSetup,
		KindAppSetup:           MeaningAppSetup,
		KindAppTypeMismatch:    MeaningAppSetup,
		KindInvalidRequest:     MeaningUnknown,
		KindLarkError:          MeaningUnknown,
		KindRateLimited:        MeaningTransient,
		KindUnavailable:        MeaningTransient,
		KindBadResponse:        MeaningTransient,
		KindReauthRequired:     MeaningGrantOver,
		KindUserRefused:        MeaningGrantOver,
		KindUserChallenge:      MeaningUserAction,
		KindCodeInvalid:        MeaningUnknown,
		KindUserTokenInvalid:   MeaningStaleToken,
		KindTenantTokenInvalid: MeaningStaleToken,
		KindAppTokenInvalid:    MeaningStaleToken,
		KindAppTicketInvalid:   MeaningAwaitTicket,
		KindTenantKeyInvalid:   MeaningTenantUnavailable,
	}
	for kind, meaning := range want {
		assert.Equal(t, meaning, (&Error{Kind: kind}).Meaning(), kind)
		if kind != KindLarkError {
			assert.NotContains(t, (&Error{Kind: kind}).Error(), "Lark returned an error", "kind %s has no text of its own", kind)
		}
	}
	assert.Equal(t, MeaningUnknown, (&Error{Kind: "something_new"}).Meaning())
}
