package larkemu

import (
	"fmt"
	"net/http"
	"time"
)

// revokeGrants marks the selected grants revoked and sends the revocation event of each grant that
// was not revoked before. It returns the number of grants matched and the deliveries made.
func (s *Server) revokeGrants(sel GrantSelector) (int, []EventDelivery, error) {
	if err := sel.validate(); err != nil {
		return 0, nil, err
	}
	reason := sel.Reason
	if reason == "" {
		reason = RevokeReasonUser
	}
	if _, ok := revokeReasonText[reason]; !ok {
		return 0, nil, fmt.Errorf("reason must be one of %s, %s, %s, %s or %s", RevokeReasonUser,
			RevokeReasonAdministrator, RevokeReasonSecurity, RevokeReasonRestriction, RevokeReasonUnknown)
	}
	now := s.clk.Now()
	s.mu.Lock()
	var recs []*eventRecord
	n := s.selectGrants(sel, func(g *grant) {
		if g.revoked {
			return // already revoked: Lark has nothing new to tell
		}
		g.revoked = true
		if rec := s.revokedEventLocked(g, reason, now); rec != nil {
			recs = append(recs, rec)
		}
	})
	s.mu.Unlock()
	deliveries := make([]EventDelivery, 0, len(recs))
	for _, rec := range recs {
		deliveries = append(deliveries, s.deliverNow(rec))
	}
	return n, deliveries, nil
}

// revokedEventLocked builds auth.user_access_token.revoked_v4 for a grant whose access and refresh
// tokens were both revoked, or returns nil when its app did not subscribe. The header names the
// user's tenant; user_id is sent to self-built apps only, the only
// ones that can hold the field permission for it. Callers hold s.mu.
func (s *Server) revokedEventLocked(g *grant, reason string, now time.Time) *eventRecord {
	a, ok := s.apps[g.appID]
	if !ok || !a.subscribed(EventUserTokenRevoked) {
		return nil
	}
	u := s.identity.users[g.userID]
	ev := revokedEvent{
		RevokeTokenType: revokeBothTokens, RevokeReason: revokeReasonText[reason],
		OpenID: openIDOf(g.appID, u), UnionID: unionIDOf(u),
	}
	if a.AppType == AppTypeSelfBuilt {
		ev.UserID = u.UserID
	}
	return s.newLarkEventLocked(&a.App, EventUserTokenRevoked, revokedPayload(&a.App, s.tenantOfLocked(u), ev, now), now)
}

type revokeGrantsReply struct {
	Grants int             `json:"grants"`
	Events []EventDelivery `json:"events,omitempty"`
}

func (s *Server) ctlRevokeGrantsWithEvents(w http.ResponseWriter, r *http.Request) error {
	var sel GrantSelector
	if err := decodeControl(r, &sel); err != nil {
		return err
	}
	n, deliveries, err := s.revokeGrants(sel)
	if err != nil {
		return badRequest("%v", err)
	}
	if n == 0 {
		return &controlError{http.StatusNotFound, "no grant matched"}
	}
	writeJSON(w, http.StatusOK, revokeGrantsReply{Grants: n, Events: deliveries})
	return nil
}
