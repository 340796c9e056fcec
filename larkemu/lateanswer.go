package larkemu

import (
	"net/http"
	"net/http/httptest"
	"time"
)

// FailLateAnswer runs the real handler at once, so Lark acts (a refresh token is used up and its
// successor issued), and sends the answer only after Delay (default 1 s). A client that gives up or
// dies before then never learns the result: the situation of a Vault node killed, or a reader gone,
// while Lark's answer is on its way.
const FailLateAnswer FailureMode = "late_answer"

const defaultLateAnswerDelay = time.Second

// answerLate is FailLateAnswer: next runs now, its answer is written after d unless the client has
// left (or the server is closing), in which case the connection is dropped without it.
func (s *Server) answerLate(w http.ResponseWriter, req *request, d time.Duration, next func(http.ResponseWriter)) {
	rec := httptest.NewRecorder()
	next(rec)
	if !s.hold(req.Context(), orDefault(d, defaultLateAnswerDelay)) {
		s.logf("late answer not delivered: the client left or the server is closing")
		abortConnection(w)
		return
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}
