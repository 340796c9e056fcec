package larksecrets

import "strings"

// grantStoragePrefix is where grants are stored: users/<app_id>/<slot>.
const grantStoragePrefix = "users/"

// grantID names one grant: a user slot under an app. Storage keys, lock keys and log fields are
// all derived from it, so nobody builds "app/slot" strings by hand.
type grantID struct{ App, Slot string }

func (id grantID) storageKey() string { return grantStoragePrefix + id.App + "/" + id.Slot }

// String is "app/slot", the form operators see in lists, reports and notices.
func (id grantID) String() string { return id.App + "/" + id.Slot }

func parseGrantID(s string) (grantID, bool) {
	app, slot, ok := strings.Cut(s, "/")
	return grantID{app, slot}, ok && app != "" && slot != ""
}
