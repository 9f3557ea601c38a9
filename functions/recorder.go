package functions

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"
	"unicode/utf8"
)

// recorder is the http.ResponseWriter the application writes to when its
// response has to be turned into an output binding or rewritten: it keeps
// the status, the headers as they were when the status was written, and
// the body.
type recorder struct {
	header      http.Header
	sent        http.Header // header snapshot at WriteHeader
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.wroteHeader || code < 200 || code > 999 {
		// informational (1xx) responses are not final; out-of-range codes
		// are the application's bug, answered as 500 below
		if !r.wroteHeader && (code < 100 || code > 999) {
			r.status, r.wroteHeader = http.StatusInternalServerError, true
			r.sent = r.header.Clone()
		}
		return
	}
	r.status, r.wroteHeader = code, true
	r.sent = r.header.Clone()
}

func (r *recorder) Write(p []byte) (int, error) {
	if !r.wroteHeader {
		if _, haveType := r.header["Content-Type"]; !haveType && len(p) > 0 {
			r.header.Set("Content-Type", http.DetectContentType(p))
		}
		r.WriteHeader(http.StatusOK)
	}
	return r.body.Write(p)
}

func (r *recorder) WriteString(s string) (int, error) {
	return r.Write([]byte(s))
}

// Flush lets handlers that flush (long polls, for one) run; the response is
// delivered as a whole anyway.
func (r *recorder) Flush() {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
}

func (r *recorder) statusCode() int {
	if !r.wroteHeader {
		return http.StatusOK
	}
	return r.status
}

// result returns the headers of the response: those at WriteHeader, like a
// real connection would have sent.
func (r *recorder) result() http.Header {
	if r.sent != nil {
		return r.sent
	}
	return r.header
}

func isValidUTF8(s string) bool { return utf8.ValidString(s) }

// decodeBase64 decodes standard base64, with or without padding.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}
