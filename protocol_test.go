package sessioncap

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// luaTwins maps every constant the scripts define (an upper-case local) to
// the Go value of the same meaning. Lua offsets are 1-based and inclusive,
// Go's 0-based and half open: FROM is the Go start plus one, TO the Go end.
var luaTwins = map[string]any{
	"STATUS_FULL":     statusFull,
	"STATUS_NONE":     statusNone,
	"STATUS_OK":       statusOK,
	"STATUS_ENDED":    statusEnded,
	"STATUS_EXPIRED":  statusExpired,
	"STATUS_CONFLICT": statusConflict,
	"STATUS_CEILING":  statusCeiling,

	"KIND_LIVE":     int(kindLive),
	"CODE_EVICTED":  string(rune(codeEvicted)),
	"CODE_LOGOUT":   string(rune(codeLogout)),
	"CODE_REVOKED":  string(rune(codeRevoked)),
	"CODE_ROTATED":  string(rune(codeRotated)),
	"CODE_EXPIRED":  string(rune(codeExpired)),
	"CODE_REPLACED": string(rune(codeReplaced)),

	"DIGEST_FROM":  offDigest + 1,
	"DIGEST_TO":    offDigest + digestLen,
	"CREATED_FROM": offCreated + 1,
	"CREATED_TO":   offLast,
	"LAST_FROM":    offLast + 1,
	"LAST_TO":      offAbs,
	"ABS_FROM":     offAbs + 1,
	"ABS_TO":       offIdle,
	"IDLE_FROM":    offIdle + 1,
	"IDLE_TO":      offMetaLen,
	"METALEN_FROM": offMetaLen + 1,
	"METALEN_TO":   offMeta,
	"META_FROM":    offMeta + 1,

	"TS_FORMAT":        fmt.Sprintf("%%0%dd", tsLen),
	"TS_LEN":           tsLen,
	"TAIL_BY_FROM":     tombBy - tombAt + 1,
	"TAIL_BY_TO":       tombMeta - tombAt,
	"TAIL_ACTOR_FROM":  tombMeta - tombAt + 1,
	"SID_LEN":          sidLen,
	"ENTRY_LEN":        indexEntryLen,
	"SEQ_LEN":          seqLen,
	"SEQ_FORMAT":       fmt.Sprintf("%%0%dd", seqLen),
	"L_ENTRY_LEN":      lEntryLen,
	"X_ENTRY_LEN":      xEntryLen,
	"BLOCK_MAX":        blockMax,
	"TAIL_MAX":         tailMax,
	"SMALL_MAX":        smallMax,
	"SMALL_MIN":        smallMin,
	"BLOCK_PREFIX":     blockPrefix,
	"ID_LEN":           idLen,
	"ID_FORMAT":        fmt.Sprintf("%%0%dd", idLen),
	"COUNT_LEN":        countLen,
	"COUNT_FORMAT":     fmt.Sprintf("%%0%dd", countLen),
	"DIR_COUNT_LEN":    dirCountLen,
	"DIR_COUNT_FORMAT": fmt.Sprintf("%%0%dd", dirCountLen),
	"HEADER_LEN":       indexHeaderLen,

	"REJECT":             rejectAtCap,
	"MODE_LOGOUT":        modeLogout,
	"MODE_LOGOUT_OTHERS": modeLogoutOthers,
	"MODE_REVOKE":        modeRevoke,
	"MODE_LOGOUT_ALL":    modeLogoutAll,
}

// What a named constant replaces: a record kind or code compared as a
// number, and a record field sliced at literal offsets (the first byte,
// sub(r, 1, 1), is the kind and needs no name).
var luaMagic = regexp.MustCompile(`byte\([^)]*\)\s*[~=]=\s*\d|sub\([^,()]+,\s*\d+\s*(?:,\s*\d+\s*)?\)|'%0\d+d'`)

// luaConstants reads every upper-case local of the scripts, and fails on
// one defined twice: each has one home.
func luaConstants(t *testing.T) map[string]any {
	t.Helper()
	files, err := filepath.Glob("lua/*.lua")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	got := map[string]any{}
	where := map[string]string{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(src), "\n") {
			m := luaConstLine.FindStringSubmatch(strings.TrimSpace(line))
			if m == nil {
				continue
			}
			names := strings.Split(m[1], ",")
			values := strings.Split(m[2], ",")
			if len(names) != len(values) {
				t.Errorf("%s:%d: %d names, %d values", f, i+1, len(names), len(values))
				continue
			}
			for j := range names {
				name, raw := strings.TrimSpace(names[j]), strings.TrimSpace(values[j])
				v := luaValue.FindStringSubmatch(raw)
				if v == nil {
					t.Errorf("%s:%d: %s = %s: want an integer or a quoted string", f, i+1, name, raw)
					continue
				}
				if prev, dup := where[name]; dup {
					t.Errorf("%s:%d: %s is already defined at %s", f, i+1, name, prev)
				}
				where[name] = fmt.Sprintf("%s:%d", f, i+1)
				if v[1] != "" {
					n, _ := strconv.Atoi(v[1])
					got[name] = n
				} else {
					got[name] = v[2]
				}
			}
		}
	}
	return got
}

// TestLuaProtocolMatchesGo keeps the two sides of the script protocol from
// drifting: every status, mode, record kind, code and offset the scripts
// name must equal its Go twin, and every twin must exist in the scripts.
func TestLuaProtocolMatchesGo(t *testing.T) {
	t.Parallel()
	lua := luaConstants(t)
	for name, v := range lua {
		want, ok := luaTwins[name]
		if !ok {
			t.Errorf("lua constant %s = %v has no Go twin in luaTwins", name, v)
			continue
		}
		if fmt.Sprint(v) != fmt.Sprint(want) {
			t.Errorf("lua %s = %v, Go says %v", name, v, want)
		}
	}
	for name := range luaTwins {
		if _, ok := lua[name]; !ok {
			t.Errorf("Go twin %s is defined in no script", name)
		}
	}
}

// TestLuaNoMagicNumbers catches a record kind compared as a bare number or a
// field sliced at literal offsets: what the named constants are for.
func TestLuaNoMagicNumbers(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("lua/*.lua")
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(src), "\n") {
			code, _, _ := strings.Cut(line, "--")
			m := luaMagic.FindString(code)
			if m != "" && !strings.HasSuffix(m, " 1, 1)") && luaConstLine.FindString(strings.TrimSpace(line)) == "" {
				t.Errorf("%s:%d: %q: use a named constant from lua/protocol.lua", f, i+1, m)
			}
		}
	}
}
