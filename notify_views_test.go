package larksecrets

import "time"

// The two app-wide notices, by the names the card tests use; both are built by appView.

func setupView(app *appEntry, no *notice, esc escaper) *noticeView {
	return appView(app, no, remedies{}, time.UTC, esc)
}

func rollbackView(app *appEntry, no *notice, r remedies, loc *time.Location, esc escaper) *noticeView {
	return appView(app, no, r, loc, esc)
}
