package sessioncap

import (
	"fmt"
	"regexp"
	"strings"
)

// The scripts name their protocol constants (lua/protocol.lua) and run
// with the values in their place. Lua 5.1 has no constants: a local that a
// function uses becomes an upvalue, and Redis's Lua builds every function a
// script defines, with its upvalues, on every call. Inlining the values
// took about 4 µs off every script call that defines the prelude's
// functions, 10% of an evicting sign-in (bench/NOTES.md, sixth round),
// and keeps the names in the source, where the reader and
// TestLuaProtocolMatchesGo need them.

var (
	// local NAME[, NAME...] = value[, value...]  -- comment
	luaConstLine = regexp.MustCompile(`^local ([A-Z][A-Z0-9_]+(?:\s*,\s*[A-Z][A-Z0-9_]+)*)\s*=\s*(.+?)\s*(?:--.*)?$`)
	// An integer or a single-quoted string without escapes.
	luaValue = regexp.MustCompile(`^(?:(-?\d+)|'([^'\\]*)')$`)
)

// protocolValues reads the constants of protocol.lua: each name and the
// Lua text of its value, parenthesised where it is not a plain number so
// that it stays one operand wherever it lands (#('b'), x - (-1)). Every
// line of the file is a comment, blank, or a constant.
func protocolValues(src string) (map[string]string, error) {
	out := map[string]string{}
	for i, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "--") {
			continue
		}
		m := luaConstLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("protocol.lua:%d: not a constant: %q", i+1, line)
		}
		names, values := strings.Split(m[1], ","), strings.Split(m[2], ",")
		if len(names) != len(values) {
			return nil, fmt.Errorf("protocol.lua:%d: %d names, %d values", i+1, len(names), len(values))
		}
		for j := range names {
			name, raw := strings.TrimSpace(names[j]), strings.TrimSpace(values[j])
			v := luaValue.FindStringSubmatch(raw)
			if v == nil {
				return nil, fmt.Errorf("protocol.lua:%d: %s = %s: want an integer or a quoted string", i+1, name, raw)
			}
			if _, dup := out[name]; dup {
				return nil, fmt.Errorf("protocol.lua:%d: %s defined twice", i+1, name)
			}
			if v[1] == "" || strings.HasPrefix(raw, "-") {
				raw = "(" + raw + ")"
			}
			out[name] = raw
		}
	}
	return out, nil
}

// inlineConstants returns src with every identifier in values replaced by
// its value. Comments, string literals and field names (after '.' or ':')
// are left as they are. The scripts use no long strings or long comments
// ([[ ]]), and a test holds them to that.
func inlineConstants(src string, values map[string]string) string {
	var b strings.Builder
	b.Grow(len(src))
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '-' && i+1 < len(src) && src[i+1] == '-':
			end := strings.IndexByte(src[i:], '\n')
			if end < 0 {
				end = len(src) - i
			}
			b.WriteString(src[i : i+end])
			i += end
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(src) && src[j] != c && src[j] != '\n' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j+1, len(src))
			b.WriteString(src[i:j])
			i = j
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && (isIdentStart(src[j]) || src[j] >= '0' && src[j] <= '9') {
				j++
			}
			word := src[i:j]
			field := i > 0 && (src[i-1] == '.' || src[i-1] == ':') && (i < 2 || src[i-2] != '.')
			if v, ok := values[word]; ok && !field {
				b.WriteString(v)
			} else {
				b.WriteString(word)
			}
			i = j
		case c >= '0' && c <= '9':
			// A number, with any letters it carries (0x1F, 1e3), so that
			// they are never read as an identifier.
			j := i + 1
			for j < len(src) && (isIdentStart(src[j]) || src[j] >= '0' && src[j] <= '9' || src[j] == '.') {
				j++
			}
			b.WriteString(src[i:j])
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// script compiles the concatenation of parts with protocol.lua's values
// inlined.
func script(parts ...string) string {
	values, err := protocolValues(luaProtocol)
	if err != nil {
		panic("sessioncap: " + err.Error()) // the embedded file is broken: no build can work
	}
	return inlineConstants(strings.Join(parts, ""), values)
}
