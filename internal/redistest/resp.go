package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// ReplyError is an error reply from Redis ("-ERR ...", "-MOVED ...").
type ReplyError string

func (e ReplyError) Error() string { return string(e) }

// Call sends one command over a fresh connection and returns the whole
// decoded reply: a string for simple and bulk strings, an int64, nil for a
// null, []any for an array, or a ReplyError. The topology helpers use it
// instead of a client library so that what they observe (who owns a slot,
// who is primary) never depends on the code under test. Each call is bounded
// by timeout.
func Call(addr string, timeout time.Duration, args ...string) (any, error) {
	out, err := CallMany(addr, timeout, args)
	if err != nil {
		return nil, err
	}
	if re, ok := out[0].(ReplyError); ok {
		return nil, re
	}
	return out[0], nil
}

// CallMany sends several commands over one connection, in order, and
// returns every reply; an error reply is a ReplyError in the slice. Use it
// where a command needs connection state, like READONLY before reading from
// a cluster replica.
func CallMany(addr string, timeout time.Duration, cmds ...[]string) ([]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	var buf []byte
	for _, args := range cmds {
		buf = append(buf, encode(args)...)
	}
	if _, err := c.Write(buf); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	out := make([]any, len(cmds))
	for i := range cmds {
		if out[i], err = readReply(r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// CallString is Call for commands whose reply is a string (or an integer,
// rendered in decimal).
func CallString(addr string, timeout time.Duration, args ...string) (string, error) {
	v, err := Call(addr, timeout, args...)
	if err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("redistest: %s: reply is %T, want a string", args[0], v)
}

func encode(args []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return []byte(b.String())
}

// readReply decodes one RESP2 reply. Nested error replies inside arrays are
// returned as ReplyError values, not as errors.
func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("redistest: empty reply line")
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return ReplyError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = readReply(r); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("redistest: unknown reply type %q", line[0])
}

// infoField extracts one "name:value" line from an INFO reply.
func infoField(info, name string) string {
	for _, l := range strings.Split(info, "\n") {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return v
		}
	}
	return ""
}

// waitFor polls cond every 50 ms until it returns nil or timeout passes, and
// then returns cond's last error, so a timeout says what was still wrong.
func waitFor(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
