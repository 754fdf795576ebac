package httpsession

import (
	"bytes"
	"errors"
	"net/http"
)

// responseWriter holds the response back until the session is saved, so a
// failed save can still turn into an error response instead of a 200 whose
// changes were lost. It commits (saves, then sends the status, headers and
// buffered body) when the handler returns, when it flushes, or when the
// buffer passes Options.BufferLimit; after that it streams straight through.
type responseWriter struct {
	rw     http.ResponseWriter
	m      *Manager
	r      *http.Request
	st     *state
	header http.Header // the handler's headers until commit
	status int
	buf    bytes.Buffer
	// committed is set once the session is saved and the response has
	// started; failed is set when the save failed and an error response
	// replaced the handler's, whose further writes are then dropped.
	committed, failed bool
}

// Header returns the handler's header map; after commit it is the real one,
// so trailers still work.
func (w *responseWriter) Header() http.Header {
	if w.committed {
		return w.rw.Header()
	}
	return w.header
}

// WriteHeader records the status; informational 1xx statuses (103 Early
// Hints) pass straight through since they carry no session state.
func (w *responseWriter) WriteHeader(code int) {
	if w.committed {
		if !w.failed {
			w.rw.WriteHeader(code)
		}
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		copyHeader(w.rw.Header(), w.header)
		w.rw.WriteHeader(code)
		return
	}
	if w.status == 0 {
		w.status = code
	}
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.committed {
		if w.failed {
			return 0, errResponseReplaced
		}
		return w.rw.Write(p)
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.buf.Len()+len(p) > w.m.opt.BufferLimit {
		if err := w.commit(); err != nil {
			return 0, err
		}
		return w.rw.Write(p)
	}
	return w.buf.Write(p)
}

// errResponseReplaced tells a handler that its response was replaced by an
// error response because the session could not be saved.
var errResponseReplaced = errors.New("httpsession: response replaced: session could not be saved")

// FlushError commits and flushes, so Server-Sent Events and other streams
// reach the client at once. http.ResponseController.Flush calls it.
func (w *responseWriter) FlushError() error {
	if err := w.commit(); err != nil {
		return err
	}
	return http.NewResponseController(w.rw).Flush()
}

// Flush implements http.Flusher for handlers that type-assert it.
func (w *responseWriter) Flush() { _ = w.FlushError() }

// Unwrap lets http.ResponseController reach the server's writer for
// deadlines, hijacking and full duplex.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.rw }

// commit saves the session and starts the real response. It returns an
// error only when the handler's response was replaced.
func (w *responseWriter) commit() error {
	if w.committed {
		if w.failed {
			return errResponseReplaced
		}
		return nil
	}
	w.committed = true
	if err := w.m.commitSession(w.r.Context(), w.st); err != nil {
		w.failed = true
		w.buf.Reset()
		w.m.fail(w.rw, w.r, w.st, err)
		return errResponseReplaced
	}
	dst := w.rw.Header()
	copyHeader(dst, w.header)
	if c := w.st.cookie; c != nil {
		http.SetCookie(w.rw, c)
		// A response that sets a session cookie must never be cached by a
		// shared cache, which would hand the cookie to the next visitor.
		dst.Set("Cache-Control", "no-store")
		w.st.cookie = nil
	}
	if w.status != 0 {
		w.rw.WriteHeader(w.status)
	}
	if w.buf.Len() > 0 {
		_, err := w.rw.Write(w.buf.Bytes())
		w.buf.Reset()
		return err
	}
	return nil
}

// finish runs after the handler returned: it commits, and saves again if the
// handler changed values after the response had started streaming; that
// save can only be logged.
func (w *responseWriter) finish() {
	if !w.committed {
		_ = w.commit()
		return
	}
	if w.failed {
		return
	}
	if err := w.m.commitSession(w.r.Context(), w.st); err != nil {
		w.m.opt.Logger.Error("httpsession: saving session after the response started failed",
			"error", err.Error())
	}
}

func copyHeader(dst, src http.Header) {
	for k, v := range src {
		dst[k] = v
	}
}
