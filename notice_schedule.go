package larksecrets

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// A 5-field expression is short; whitespace padding would otherwise go into storage as it came.
const maxScheduleBytes = 256

// notifySchedule is a cron schedule in a time zone.
type notifySchedule struct {
	sched cron.Schedule
	loc   *time.Location
}

func parseSchedule(expr, tz string) (*notifySchedule, error) {
	if err := validTimezone(tz); err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("notify_timezone %q is not an IANA time zone (such as UTC or Asia/Shanghai)", truncateForMessage(tz))
	}
	if len(expr) > maxScheduleBytes {
		return nil, fmt.Errorf("notify_schedule is too long (%d bytes, at most %d)", len(expr), maxScheduleBytes)
	}
	// The cron library reads a leading "TZ=" or "CRON_TZ=" as the schedule's own zone, which would
	// bypass the checks above ("CRON_TZ=Local"), and panics when no field follows it ("TZ=UTC").
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return nil, fmt.Errorf("notify_schedule %q names a time zone; give the 5 cron fields only and set notify_timezone", truncateForMessage(expr))
	}
	sched, err := cronParser.Parse(expr)
	if err != nil {
		// The library's reason quotes the expression's fields as they came, control characters too.
		return nil, fmt.Errorf("notify_schedule %q is not a 5-field cron expression (minute hour day month weekday): %s", truncateForMessage(expr), truncateForMessage(err.Error()))
	}
	// A day that never comes (30 February, 31 April) parses, but no notice would ever be sent. The
	// library looks five years ahead, which always includes a 29 February.
	if sched.Next(time.Date(2024, 1, 1, 0, 0, 0, 0, loc)).IsZero() {
		return nil, fmt.Errorf("notify_schedule %q never fires: no such day exists", truncateForMessage(expr))
	}
	return &notifySchedule{sched: sched, loc: loc}, nil
}

// validTimezone accepts IANA names only. time.LoadLocation also takes "" and "Local" (both the
// host's zone, which differs between Vault nodes) and file-like names; none is what an operator means.
func validTimezone(tz string) error {
	if tz == "" || tz == "Local" || strings.ContainsAny(tz, "\\\x00") || strings.HasPrefix(tz, "/") || strings.Contains(tz, "..") {
		return fmt.Errorf("notify_timezone %q is not an IANA time zone (such as UTC or Asia/Shanghai)", truncateForMessage(tz))
	}
	return nil
}

// firedBetween reports the latest scheduled time in (after, until], if any.
func (s *notifySchedule) firedBetween(after, until time.Time) (time.Time, bool) {
	var last time.Time
	t := after.In(s.loc)
	for i := 0; i < 10000; i++ {
		next := s.sched.Next(t)
		if next.IsZero() || next.After(until) {
			break
		}
		last, t = next, next
	}
	return last, !last.IsZero()
}
